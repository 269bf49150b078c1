"""Supply window of pbit_x5 per corner/temperature pair (issue 17 item 3; spice_models/README.md).

The method, the JSON and the seeds are those of ``spice_models/design/chain_supply_window.py`` (shared
with pbit_x4). pbit_x5's defaults: 24 µs records at the pairs trimmed at a stage gain < 5 (at gain 3.8 a
10 µs record at tt 27 C's design point reads single-peaked 9 times in 20, a 24 µs one 0 in 20), 10 µs at
gain >= 5 (deeper valleys; the slow cold records cost a minute each), each bracketed edge bisected twice
(centred walk: 5 % / 4 = 1.25 % of VDD0; bias-0 walk: a quarter of its ~0.7 mV step), a failing record
confirmed by a second seed, 3 repeat records at the centre for the regime call's power, 240 s wall per
record.

Usage (from the repository root)::

    .venv/bin/python spice_models/pbit_x5/supply_window.py [--pairs tt:27,sf:85] [--duration 24us]
        [--out spice_models/pbit_x5/supply_window.json]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "design"))
if __name__ == "__main__":
    from chain_supply_window import main
    cold = [("tt", -40.0), ("ss", -40.0)]  # the slowest records (minutes each at load): last
    sys.exit(main(cell_dir=Path(__file__).resolve().parent, duration="24us", short_duration="10us", short_gain=5.0,
                  bisect=2, repeats=3, timeout_s=240.0, confirm=True, script="spice_models/pbit_x5/supply_window.py",
                  order=[(c, t) for c in ("tt", "ss", "ff", "sf", "fs") for t in (-40.0, 27.0, 85.0)
                         if (c, t) not in cold] + cold))
