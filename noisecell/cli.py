"""Command-line entry point: ``noisecell <command> ...`` (also ``python -m noisecell``).

Each command lives in ``noisecell/commands/<module>.py`` and provides
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``noisecell --version`` stays fast and a
command's heavy dependencies (PySpice, dask, matplotlib) load only when needed.
"""
from __future__ import annotations

import argparse
import importlib
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisecell", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"noisecell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
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
    cmd_parser = argparse.ArgumentParser(prog=f"noisecell {args.command}",
                                         description=COMMANDS[args.command][1])
    module.add_arguments(cmd_parser)
    cmd_args = cmd_parser.parse_args(argv[argv.index(args.command) + 1:])
    try:
        return int(module.run(cmd_args) or 0)
    except NoisecellError as exc:
        print(f"noisecell: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("noisecell: interrupted; completed work is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
