"""Supply window of pbit_x4 per corner/temperature pair (issue 17 item 3; spice_models/README.md).

The method, the JSON and the seeds are those of ``spice_models/design/chain_supply_window.py`` (shared with
pbit_x5); this script only names the cell and its defaults: 10 µs records, no edge bisection.

Usage (from the repository root)::

    .venv/bin/python spice_models/pbit_x4/supply_window.py [--pairs tt:27,sf:85] [--duration 10us]
        [--out spice_models/pbit_x4/supply_window.json]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "design"))
if __name__ == "__main__":
    from chain_supply_window import main
    sys.exit(main(cell_dir=Path(__file__).resolve().parent, script="spice_models/pbit_x4/supply_window.py"))
