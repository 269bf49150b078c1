"""Command-line entry point: ``noisecell <command> ...`` (also ``python -m noisecell``).

Each command lives in ``noisecell/commands/<module>.py`` and provides
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``noisecell --version`` stays fast and a
command's heavy dependencies (PySpice, dask, matplotlib) load only when needed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from . import __version__
from .errors import NoisecellError

#: command name -> (module under noisecell.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "run one transient-noise simulation of a cell and write its waveform (.npz)"),
    "cell": ("cell", "list the available cells or show one cell's description"),
    "trim": ("trim", "search a cell's trim input until it telegraphs with P(1)≈0.5 at zero bias"),
    "analyze": ("analyze", "statistics of a bit stream or analog trace: P(1), tau, rates, energy, entropy rates"),
    "entropy": ("entropy", "SP 800-90B non-IID min-entropy estimators and AIS 31 tests on a bit stream"),
    "sweep": ("sweep", "run a sweep spec (bias x temperature x supply x corner x mismatch)"),
    "status": ("status", "progress of a sweep output folder"),
    "fit": ("fit", "fit a calibrated behavioural cell model (JSON) to a sweep"),
    "sample": ("sample", "sample bits from a cell model"),
    "validate": ("validate", "validate a cell model JSON file against its schema"),
    "characterize": ("characterize", "sweep, analyse, fit, export the model and write the HTML report"),
}


#: a negative number with an optional SI suffix and unit ("-5m", "-0.5mV", "-.3u", "-1e-3"): argparse
#: itself takes only "-5" and "-0.5" as values and reads "-5m" as an unknown option.
NEGATIVE_SI = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:meg|[tgkmuµnpfa])?[a-zA-Z°]*$", re.IGNORECASE)


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default: appends "(default: X)" unless the help already states one.

    The commands' help strings carry the unit (", V", ", s", "°C") and, where the default is not a
    plain value (the cell's nominal, automatic), say so in words.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings or action.required:
            return text
        if action.nargs == 0:  # store_true / store_false / version / help flags
            return text
        if action.default is None or action.default is argparse.SUPPRESS or action.default == []:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse offers no public walk over sub-commands
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings (of the parser and its sub-commands) that take exactly one value."""
    out: set[str] = set()
    for action in parser._actions:
        if action.option_strings and action.nargs in (None, 1):
            out.update(action.option_strings)
    for sub in _subparsers(parser):
        out |= _value_options(sub)
    return out


def join_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Rewrite ``--bias -5m`` as ``--bias=-5m`` for options that take one value.

    argparse reads a token starting with "-" as an option unless it is a plain negative number, so
    the SI-suffixed values the docs use (``-0.5m``) would fail; ``--bias=-5m`` always worked.
    """
    takes_value = _value_options(parser)
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":  # everything after is positional
            out.extend(argv[i:])
            break
        if tok in takes_value and i + 1 < len(argv) and NEGATIVE_SI.match(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def command_parser(command: str, module) -> argparse.ArgumentParser:
    """The full parser of one command (its module's arguments, the shared help formatter)."""
    parser = argparse.ArgumentParser(prog=f"noisecell {command}", description=COMMANDS[command][1],
                                     formatter_class=HelpFormatter)
    module.add_arguments(parser)
    for sub in _subparsers(parser):  # nested actions (cell list/info/check) format the same way
        sub.formatter_class = HelpFormatter
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisecell", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"noisecell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        # add_help=False: this first stage only finds the command; "--help" must reach the command's
        # own parser (second stage), else it prints this empty placeholder's help listing no options.
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Two-stage parse: find the command, then let its module add its own arguments.
    args, _ = parser.parse_known_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module_name = COMMANDS[args.command][0]
    try:
        module = importlib.import_module(f"noisecell.commands.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"noisecell.commands.{module_name}":
            print(f"noisecell: error: command {args.command!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    cmd_parser = command_parser(args.command, module)
    cmd_args = cmd_parser.parse_args(join_negative_values(cmd_parser, argv[argv.index(args.command) + 1:]))
    try:
        return int(module.run(cmd_args) or 0)
    except NoisecellError as exc:
        print(f"noisecell: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("noisecell: interrupted; completed work is kept", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"noisecell: error: {args.command}: out of memory; ask for less (shorter runs, fewer cells "
              "or points)", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk that fills up, a file that vanishes mid-run: name it, no traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"noisecell: error: {where}{exc.strerror or exc}; check the path, its permissions and the free "
              "space", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only on request
        if os.environ.get("NOISECELL_DEBUG"):
            raise
        detail = " ".join(str(exc).split())[:300]
        print(f"noisecell: internal error: {exc.__class__.__name__}: {detail} (a bug in noisecell; "
              "rerun with NOISECELL_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return 70


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def entry_point() -> None:
    """The process entry (``noisecell`` script, ``python -m noisecell``): :func:`main`, then exit with its
    code without the interpreter's final teardown. In this environment (numpy 2.4, pandas 3.1, pyarrow
    26, numba 0.68 on Debian 12) a command that reads a sweep store aborts in about half of the runs
    *after* its work and output are done ("terminate called without an active exception", SIGABRT,
    exit 134: a C++ thread destroyed in a library's static teardown; not reproducible under gdb,
    not from any single import). So the exit runs what a normal exit runs for Python — the atexit
    handlers, logging's flush, stdout/stderr flush — and then ``os._exit``, skipping only the
    native destructors."""
    import atexit
    import logging

    try:
        rc = main()
    except SystemExit as exc:  # argparse's --help / usage errors
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(int(rc or 0))
