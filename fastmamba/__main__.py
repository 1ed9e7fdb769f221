"""`python -m fastmamba` is the `fastmamba` command."""

import sys

from fastmamba.compiler.cli import main

sys.exit(main())
