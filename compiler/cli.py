"""The `fastmamba` command line: top of the dependency order.

Each subcommand lives in its own module under `compiler/commands/` and
exposes `register(subparsers)`, which adds its parser and sets `run` to a
function taking the parsed arguments and returning the exit status.  This
module only dispatches and turns errors into messages: a problem with the
input (a `FastmambaError`) is one line and exit status 1; anything else is a
bug in fastmamba, reported by compiler/diagnostics.py as one block saying what
to report (exit status 70), with the traceback under `--debug` (accepted
before or after the command name).  `--version` loads no command module: the
versions come from the installed distributions' metadata (torch is not imported);
`--help` lists the commands with each module's one-line HELP read from its source,
importing none of them (under 0.5 s: benchmarks/bench_cli_startup.py).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import time
from pathlib import Path

from fastmamba.compiler.diagnostics import report
from fastmamba.isa.errors import FastmambaError

LOADED = time.perf_counter()  # the first main() of a process counts its start-up from here (--time-passes)
_first_call = True

# Command name -> the module that registers it, in the order `--help` lists them.  Only the named
# command's module is imported (`fastmamba opt` never loads torch); `--help` or an unknown name loads all.
COMMANDS = {
    "demo": "fastmamba.compiler.commands.demo",
    "compile": "fastmamba.compiler.commands.compile",
    "import": "fastmamba.compiler.commands.import_cmd",
    "opt": "fastmamba.compiler.commands.opt",
    "translate": "fastmamba.compiler.commands.translate",
    "generate": "fastmamba.compiler.commands.generate",
    "eval": "fastmamba.compiler.commands.eval",
    "asm": "fastmamba.compiler.commands.asm",
    "disasm": "fastmamba.compiler.commands.disasm",
    "sim": "fastmamba.compiler.commands.sim",
    "run": "fastmamba.compiler.commands.run",
    "profile": "fastmamba.compiler.commands.profile",
    "synth": "fastmamba.compiler.commands.synth",
    "explore": "fastmamba.compiler.commands.explore",
}

PROG = "fastmamba"


# The distributions whose versions `fastmamba --version` prints after its own (read from their metadata).
VERSIONED = ("xdsl", "torch-mlir", "torch")


def version_text() -> str:
    """`fastmamba X.Y.Z` and, one a line, the versions of the compiler's main dependencies (none imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from fastmamba import __version__

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"{PROG} {__version__}\n" + "".join(f"  {dist} {of(dist)}\n" for dist in VERSIONED)


class VersionAction(argparse.Action):
    """--version: print version_text() to stdout and exit 0 (computed only when asked, unlike argparse's own)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_text())
        parser.exit(0)


def one_line(text: str) -> str:
    """`text` with each character that is not printable (a line break, another control character, a surrogate
    standing for a byte that is not UTF-8) written as its Python escape (`\\n`, `\\x1e`, `\\udcff`): an error
    stays one line whatever file name, option value or pass name it quotes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (and exit status 2)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def command_help(module: str) -> str:
    """The one-line help of a command module (its HELP constant), read from its source without importing it:
    `fastmamba --help` lists the commands without loading torch, xDSL or numpy (a module whose HELP is not a
    plain string is imported)."""
    spec = importlib.util.find_spec(module)
    try:
        tree = ast.parse(Path(spec.origin).read_text()) if spec and spec.origin else None
    except (OSError, SyntaxError):
        tree = None
    for node in tree.body if tree else ():
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["HELP"]:
            try:
                return str(ast.literal_eval(node.value))
            except ValueError:
                break
    return importlib.import_module(module).HELP


def build_parser(command: str | None = None, summary: bool = False) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command` (one of COMMANDS; "": none) when given.  With `summary`,
    each command is only named with its one-line help (command_help; no command module is imported): enough for
    `fastmamba --help` and for naming an unknown command."""
    parser = OneLineErrorParser(
        prog=PROG,
        description="Compile Mamba2 language models for a FastMamba-style FPGA accelerator and run them on its "
        "instruction-level simulator.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error (a bug in fastmamba), print its full traceback")
    parser.add_argument("-V", "--version", action=VersionAction,
                        help=f"print the versions of {PROG}, {', '.join(VERSIONED)} and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        if summary:
            sub.add_parser(name, help=command_help(module))
        elif command is None or name == command:
            importlib.import_module(module).register(sub)
    for subparser in sub.choices.values():  # `fastmamba opt --debug ...` as well as `fastmamba --debug opt ...`
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                               help="on an internal error, print its full traceback")
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command `argv` names (its first word that is not an option; the global options take no value)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    global _first_call
    started, _first_call = LOADED if _first_call else time.perf_counter(), False
    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # start-up (importing the command's module, torch or xDSL) can take seconds: Ctrl-C there too
        command = _command_in(argv)
        if command is None and any(a in ("-V", "--version") for a in argv):
            command = ""  # --version alone: no command's module is loaded
        parser = build_parser(command, summary=command is None)  # (no command named: the list is enough)
        args = parser.parse_args(argv)
        args.started = started  # (--time-passes: start-up is a line of the report)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.run(args) or 0)
    except FastmambaError as exc:
        print(f"{PROG} {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # InternalError or any other exception (xDSL has BaseExceptions too): a bug
        sys.stdout.flush()
        return report(exc, f"{PROG} {args.command}", args.debug, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
