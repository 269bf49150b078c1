"""A mismatch part that cannot run on the cell (pbit_x4, session 24: `instance_trim is for latches`,
raised after 24 min of conditions) must not cost the rest: the model and report are written and the
report says why there is no mismatch distribution."""
from __future__ import annotations

import json

from noisecell.errors import InputError


def test_a_failing_mismatch_part_leaves_the_model_and_report(tmp_path, monkeypatch):
    import noisecell.report.characterize as ch
    import noisecell.report.procedures.mismatch as mm
    from noisecell.report.procedures.mismatch import MismatchSettings

    real = ch.load_char_spec

    def with_mismatch(*a, **k):
        s = real(*a, **k)
        s.mismatch = MismatchSettings(instances=2)
        return s

    def boom(*a, **k):
        raise InputError("cell pbit_generic: instance_trim is for latches ([balance] offset = \"inverters\")")

    monkeypatch.setattr(ch, "load_char_spec", with_mismatch)
    monkeypatch.setattr(mm, "run_mismatch", boom)
    ch.characterize("pbit_generic", tmp_path / "out", quick=True, workers=1)
    assert (tmp_path / "out" / "model.json").is_file() and (tmp_path / "out" / "report.html").is_file()
    doc = json.loads((tmp_path / "out" / "model.json").read_text())
    assert "mismatch" not in doc or not doc.get("mismatch")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "mismatch: not run: cell pbit_generic: instance_trim is for latches" in html
