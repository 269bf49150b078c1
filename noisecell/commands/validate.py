"""``noisecell validate model.json``: exit 0 when the model is valid, else print the first violation, exit 1."""
from __future__ import annotations

import argparse

from ..errors import InputError
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="cell model JSON file")


def run(args) -> int:
    from ..model import CellModel

    try:
        model = CellModel.load(args.model)
    except InputError as exc:
        # a failed validation is this command's answer, not a usage error: exit 1 as documented
        raise InputError(str(exc), exit_code=1) from None
    # the version the file says, and the one it is read as (older files are upgraded in memory)
    print_json({"model": args.model, "valid": True, "cell": model.name,
                "schema_version": model.read_schema_version, "read_as": model.to_dict()["schema_version"],
                "conditions": len(model.conditions)})
    return 0
