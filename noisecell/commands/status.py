"""``noisecell status DIR [--json]``: progress of a sweep output folder."""
from __future__ import annotations

import argparse
from . import print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="a sweep output folder (noisecell sweep --out DIR)")
    parser.add_argument("--json", action="store_true",
                        help='print {"total", "done", "failed", "pending", "quarantined"} as one JSON line')


def run(args) -> int:
    from ..sweep.store import Store

    store = Store(args.dir)
    counts = store.counts()
    if args.json:
        print_json({**counts, "quarantined": len(store.quarantined_files())})
        return 0
    m = store.read_manifest()
    print(f"sweep {args.dir} (spec {m.get('spec_source')}, cell {m.get('cell', {}).get('name')}): "
          f"{counts['done']}/{counts['total']} done, {counts['failed']} failed, {counts['pending']} pending")
    if counts["failed"]:
        df = store.load()
        for r in df[df["status"] == "failed"].to_dict("records"):
            print(f"  FAILED #{r['index']} {r['job_id'][:12]} corner={r['corner']} temp={r['temp_c']:g} °C "
                  f"vdd={r['vdd_v']:g} V bias={r['bias_v']:g} V: {r.get('error')}")
    q = store.quarantined_files()
    if q:
        print(f"  {len(q)} damaged file(s) in quarantine (their jobs are pending; resume the sweep to rerun them):")
        for p in q[:20]:
            print(f"  QUARANTINED {p}")
    return 0
