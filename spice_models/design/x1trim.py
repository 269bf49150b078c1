"""Trim table of a cell in parallel processes: `noisecell trim CELL --all --write`, split in two.

`noisecell trim --all` runs the 15 corner/temperature pairs one after another in one process; this
runs a share of them (`--part k/n`) with the same noisecell.trim.trim_cell and the same settings, and
writes each result row (noisecell.trim.row_from_result) as a JSON line; `--merge FILES` writes the
table from all rows exactly as `--write` does (noisecell.trim.write_table: trims.json + cell.toml).

Usage: nice -n 19 .venv/bin/python spice_models/design/x1trim.py CELL --part 1/2 --out rows1.jsonl [--duration 10us]
           [--pairs ss:-40,fs:27]   (re-run some pairs; --merge keeps the last row of each pair)
       .venv/bin/python spice_models/design/x1trim.py CELL --merge rows1.jsonl rows2.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from noisecell import trim as T  # noqa: E402
from noisecell.cells import load_cell  # noqa: E402
from noisecell.errors import SimulationError  # noqa: E402
from noisecell.units import parse_si  # noqa: E402


def markdown(cell, row_files) -> str:
    """Trim table; the supply window of a pair comes from its checks: the telegraph starts between
    the highest single-peaked and the lowest bistable supply checked (a chain does not freeze with
    more supply, so the window's top is the highest bistable supply checked, or the range's end)."""
    rows = [json.loads(ln) for f in row_files for ln in Path(f).read_text().splitlines() if ln.strip()]
    rows = list({(r["corner"], float(r["temp_c"])): r for r in rows}.values())  # the last row of each pair
    aux = sorted({k for r in rows for k in (r.get("aux_trims") or {})})
    out = ["| corner | T (°C) | result | VGP (V) | " + "".join(f"{k} (V) | " for k in aux) + "VDD (mV) | check at zero "
           "bias: regime, P(1) ± SE, flips/µs | power | supply window seen (mV) | checks |",
           "|---|---|---|---|" + "---|" * len(aux) + "---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (cell.corners.index(r["corner"]), r["temp_c"])):
        att = r.get("_attempts", [])
        single = [x["vdd_v"] for x in att if x["regime"] == "single_peaked"]
        bist = [x["vdd_v"] for x in att if x["regime"] == "bistable"]
        if bist:
            below = [s for s in single if s < min(bist)]
            win = (f"starts {max(below) * 1e3:.0f}–{min(bist) * 1e3:.0f}" if below else
                   (f"telegraphs at {min(bist) * 1e3:.0f} (first check)" if len(att) == 1 or att[0]["regime"] == "bistable"
                    else f"lowest bistable {min(bist) * 1e3:.0f} (below: frozen/slow)")) + f", bistable up to ≥ {max(bist) * 1e3:.0f}"
        else:
            win = "none seen" + (f" (single-peaked ≤ {max(single) * 1e3:.0f})" if single else "")
        vgp = "—" if r.get("value_v") is None else f"{r['value_v']:+.4f}"
        vdd = "—" if r.get("vdd_v") is None else f"{r['vdd_v'] * 1e3:.1f}"
        chk = "— (" + r["message"] + ")" if r.get("regime") is None else (
            f"{r['regime']}, {r['p1']:.3f} ± {r['p1_se'] if r.get('p1_se') is not None else float('nan'):.3f}, "
            f"{r['flips_per_us']:.3g}")
        pw = "—" if r.get("power_w") is None else f"{r['power_w'] * 1e9:.3g} nW"
        ax = "".join("— | " if (r.get("aux_trims") or {}).get(k) is None else f"{r['aux_trims'][k]:+.1f} | " for k in aux)
        out.append(f"| {r['corner']} | {r['temp_c']:g} | {'**ok**' if r['ok'] else 'no trim'} | {vgp} | {ax}{vdd} | {chk} | "
                   f"{pw} | {win} | {r.get('checks', 0)} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cell")
    ap.add_argument("--part", default="1/1")
    ap.add_argument("--pairs", default=None, help="only these corner:temperature pairs, e.g. ss:-40,fs:27 (re-runs)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--duration", default="10us")
    ap.add_argument("--max-iterations", type=int, default=5)
    ap.add_argument("--merge", nargs="*", default=None)
    ap.add_argument("--markdown", action="store_true", help="print the stored trims.json as a markdown table "
                    "(with the supply window each pair's checks bracket) and exit")
    a = ap.parse_args()
    cell = load_cell(a.cell)
    if a.markdown:
        print(markdown(cell, a.merge or []))
        return 0
    if a.merge is not None:
        rows = [json.loads(ln) for f in a.merge for ln in Path(f).read_text().splitlines() if ln.strip()]
        last = {(r["corner"], float(r["temp_c"])): r for r in rows}  # a re-run replaces its pair's row
        rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in last.values()]
        print(T.write_table(cell, rows, command=f"noisecell trim {cell.name} --all --write --duration {a.duration} "
                                                 "(run as spice_models/design/x1trim.py, 2 processes)"))
        return 0
    k, n = (int(x) for x in a.part.split("/"))
    pairs = [(c, t) for c in cell.corners for t in T.TABLE_TEMPS_C]
    mine = pairs[k - 1::n]
    if a.pairs:
        want = [(c, float(t)) for c, t in (p.split(":") for p in a.pairs.split(","))]
        mine = [p for p in mine if p in want]
    dur = parse_si(a.duration, unit="s")
    for corner, temp in mine:
        try:
            res = T.trim_cell(cell, corner, temp, duration_s=dur, max_iterations=a.max_iterations,
                              progress=lambda s: print(s, flush=True))
        except SimulationError as exc:  # a timed-out/failed run is this pair's result, not the end of the table
            print(f"{corner} {temp:g} C: simulation failed: {exc}", flush=True)
            with open(a.out, "a") as fh:
                fh.write(json.dumps({"corner": corner, "temp_c": temp, "ok": False, "value_v": None, "vdd_v": None,
                                     "message": f"simulation failed: {str(exc)[:200]}"}) + "\n")
            continue
        print(res.summary(), flush=True)
        row = T.row_from_result(res)
        # every check's supply and regime, for the supply window (dropped before write_table)
        row["_attempts"] = [{"vdd_v": x.vdd_v, "regime": x.regime, "flips_per_us": x.flips_per_us}
                            for x in res.attempts]
        with open(a.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
