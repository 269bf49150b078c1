"""`noisecell cell list` and `noisecell cell info [CELL] [--json]`: the available cells and their descriptions."""
from __future__ import annotations

import sys

from ..errors import InputError
from . import print_json

from ..cells import DEFAULT_CELL


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="list the cells: the folders in $NOISECELL_SPICE_MODELS (':'-separated), then the built-in spice_models/")
    p_list.add_argument("--json", action="store_true", help="print a JSON array as the last line")
    p_info = sub.add_parser("info", help="show one cell's description: ports, ranges, corners, trim")
    p_info.add_argument("cell", nargs="?", default=DEFAULT_CELL,
                        help=f"cell name, folder or cell.toml path (default {DEFAULT_CELL})")
    p_info.add_argument("--json", action="store_true", help="print the description as JSON (last line)")
    p_check = sub.add_parser("check", help="DC check: can the cell be bistable, device ratings, junctions, "
                                           "every DC source's power (seconds; no noise run)")
    p_check.add_argument("cell", nargs="?", default=DEFAULT_CELL,
                         help=f"cell name, folder or cell.toml path (default {DEFAULT_CELL})")
    p_check.add_argument("--corner", default=None, help="process corner (default: the cell's nominal)")
    p_check.add_argument("--temp", default=None, help="temperature, °C (default: the cell's nominal)")
    p_check.add_argument("--vdd", default=None, help="main supply voltage, V (default: the stored trim's, else nominal)")
    p_check.add_argument("--trim", action="append", default=[], metavar="NAME=V",
                         help="trim value, V (default: the cell's stored/nominal trim); repeatable")
    p_check.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="other cell .param within its range; repeatable")
    p_check.add_argument("--json", action="store_true", help="print the full check as JSON (last line)")


def cell_info(cell) -> dict:
    """The JSON description `cell info --json` prints (V, °C; see docs in spice_models/README.md)."""
    from ..trim import stored_trims

    ports = []
    for name, s in cell.supplies.items():
        ports.append({"name": name, "kind": "supply", "source": s.source, "param": s.param,
                      "nominal_v": s.nominal_v, "range_v": list(s.range_v)})
    ports.append({"name": "bias", "kind": "bias", "param": cell.bias.param, "range_v": list(cell.bias.range_v),
                  "mid_v": cell.bias.mid_v})
    for name, node in cell.outputs.items():
        ports.append({"name": name, "kind": "output", "node": node})
    for name, t in cell.trim.items():
        ports.append({"name": name, "kind": "trim", "param": name, "nominal_v": t.nominal_v, "range_v": list(t.range_v),
                      "description": t.description})
    main = cell.supplies[cell.main_supply]
    d = cell.to_dict()
    d.update({
        "name": cell.name,
        "technology": cell.technology,
        "ports": ports,
        "bias_range_v": list(cell.bias.range_v),
        "bias_mid_v": cell.bias.mid_v,
        "vdd_v": main.nominal_v,
        "vdd_range_v": list(main.range_v),
        "corners": list(cell.corners),
    })
    stored = stored_trims(cell)
    d["trim"] = {k: {**d["trim"][k], "kind": "trim", "stored": stored.get(k, [])} for k in d["trim"]}
    for k, rows in stored.items():  # a supply-trimmed cell (no [trim.*] input): the supply is the trim
        if k not in d["trim"]:
            sup = next((s for s in cell.supplies.values() if s.param == k), None)
            d["trim"][k] = {"kind": "supply", "nominal_v": sup.nominal_v if sup else None,
                            "range_v": list(sup.range_v) if sup else None,
                            "description": "the supply is trimmed per corner/temperature (noisecell trim)",
                            "stored": rows}
    for port in ports:
        port["trimmed"] = port.get("param") in d["trim"]
    return d


def run(args) -> int:
    from ..cells import cell_dirs, list_cells, load_cell

    if args.action == "list":
        rows = []
        for name in list_cells():
            try:
                c = load_cell(name)
            except InputError as exc:  # one broken cell must not hide the others
                print(f"noisecell: warning: cell {name}: {exc}", file=sys.stderr)
                rows.append({"name": name, "technology": None, "description": None, "corners": [],
                             "error": str(exc)})
                continue
            rows.append({"name": c.name, "technology": c.technology, "description": c.description,
                         "corners": list(c.corners)})
        if not rows:
            print(f"no cells found in {', '.join(map(str, cell_dirs()))}", file=sys.stderr)
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                if r.get("error"):
                    print(f"{r['name']:16s} {'BROKEN':8s} {r['error']}")
                else:
                    print(f"{r['name']:16s} {r['technology']:8s} {r['description']}")
        return 0
    cell = load_cell(args.cell)
    if args.action == "check":
        return _check(cell, args)
    info = cell_info(cell)
    if args.json:
        print_json(info)
    else:
        print(cell.summary())
        for k, t in info["trim"].items():
            for row in t["stored"]:
                vdd = row.get("vdd_v")
                where = f"  stored trim {k} @ {row['corner']} {row['temp_c']:g} °C: "
                if row.get("ok"):
                    print(where + f"VDD {vdd * 1e3:.2f} mV, {row.get('regime')}, P(1)={row.get('p1')}, "
                          f"{row.get('flips_per_us')} flips/µs")
                else:
                    best = f"best estimate VDD {vdd * 1e3:.2f} mV; " if isinstance(vdd, (int, float)) else ""
                    print(where + f"no trim works ({best}{row.get('message', '')})")
    return 0


def _check(cell, args) -> int:
    """`cell check`: verdict line first (stderr when --json), the tables, JSON as the last line.

    Exit status 0 whatever the verdict: the check ran; its "status" field says ok / warn / fail."""
    from ..cellcheck import check_cell
    from ..units import parse_si
    from .simulate import _kv

    res = check_cell(cell, corner=args.corner,
                     temp_c=None if args.temp is None else parse_si(args.temp, unit="C", what="--temp"),
                     vdd_v=None if args.vdd is None else parse_si(args.vdd, unit="V", what="--vdd"),
                     trim=_kv(args.trim, "trim") or None, params=_kv(args.param, "param") or None)
    from ..cellcheck import power_coverage
    cov = power_coverage(cell, res)
    if args.json:
        print(res.summary(), file=sys.stderr)
        print(f"  energy: {cov['note']}", file=sys.stderr)
        print_json({**res.to_dict(), "power_coverage": cov})
    else:
        print(res.summary())
        print(f"  energy: {cov['note']}")
    return 0
