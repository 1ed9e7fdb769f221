"""`python -m compiler` is the `fastmamba` command."""

import sys

from compiler.cli import main

sys.exit(main())
