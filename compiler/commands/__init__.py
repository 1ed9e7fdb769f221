"""Subcommands of the `fastmamba` command line, one module each (see compiler.cli)."""
