"""Trim table of a cell in parallel processes: `noisecell trim CELL --all --write`, split in two.

`noisecell trim --all` runs the 15 corner/temperature pairs one after another in one process; this
runs a share of them (`--part k/n`) with the same noisecell.trim.trim_cell and the same settings, and
writes each result row (noisecell.trim.row_from_result) as a JSON line; `--merge FILES` writes the
table from all rows exactly as `--write` does (noisecell.trim.write_table: trims.json + cell.toml).

Usage: nice -n 19 .venv/bin/python spice_models/design/x1trim.py CELL --part 1/2 --out rows1.jsonl [--duration 10us]
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
from noisecell.units import parse_si  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cell")
    ap.add_argument("--part", default="1/1")
    ap.add_argument("--out", default=None)
    ap.add_argument("--duration", default="10us")
    ap.add_argument("--merge", nargs="*", default=None)
    a = ap.parse_args()
    cell = load_cell(a.cell)
    if a.merge is not None:
        rows = [json.loads(ln) for f in a.merge for ln in Path(f).read_text().splitlines() if ln.strip()]
        print(T.write_table(cell, rows, command=f"noisecell trim {cell.name} --all --write --duration {a.duration} "
                                                 "(run as spice_models/design/x1trim.py, 2 processes)"))
        return 0
    k, n = (int(x) for x in a.part.split("/"))
    pairs = [(c, t) for c in cell.corners for t in T.TABLE_TEMPS_C]
    mine = pairs[k - 1::n]
    dur = parse_si(a.duration, unit="s")
    for corner, temp in mine:
        res = T.trim_cell(cell, corner, temp, duration_s=dur, progress=lambda s: print(s, flush=True))
        print(res.summary(), flush=True)
        with open(a.out, "a") as fh:
            fh.write(json.dumps(T.row_from_result(res)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
