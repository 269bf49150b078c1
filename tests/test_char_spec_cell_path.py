"""`characterize ./mycell --spec ./mycell/characterize.toml`: the cell folder given on the command line is
relative to where the command runs (it was joined to the spec's folder: mycell/mycell, no such cell)."""
from pathlib import Path

from noisecell.report.procedures.spec import load_char_spec
from noisecell.sweep.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]


def test_cli_cell_folder_is_relative_to_the_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = load_char_spec("tests/data/cells/latch4_trim/characterize.toml", quick=False,
                          cell_name="tests/data/cells/latch4_trim")
    sw = parse_spec(spec.parts[0].sweep, source="t", base_dir=Path(spec.source).parent)
    assert Path(sw.cell) == ROOT / "tests" / "data" / "cells" / "latch4_trim"
