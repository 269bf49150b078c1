"""Sweep spec validation: the issue's example parses; malformed specs give one-line errors naming file and key."""
from __future__ import annotations

import pytest

from noisecell.errors import InputError
from noisecell.sweep.spec import load_spec

EXAMPLE = """\
cell = "pbit"            # a cell from spice_models/, or a path to a netlist
duration = "20us"        # per point; or use [adaptive]
noise_step = "1ns"
seed = 1
[grid]
bias = { start = -0.02, stop = 0.02, num = 9 }   # volts; a list also works
temperature = [27]       # °C
corner = ["tt"]
vdd = []                 # empty = the cell's nominal supply
mismatch_instances = 0   # > 0: Monte Carlo mismatch instances, each with its own seed
[adaptive]               # optional
target_p1_ci_halfwidth = 0.02
chunk = "10us"
max_duration = "200us"
"""


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_issue_example_parses(tmp_path):
    s = load_spec(write(tmp_path, EXAMPLE))
    assert s.cell == "pbit"
    assert s.duration_s == pytest.approx(20e-6)
    assert s.noise_step_s == pytest.approx(1e-9)
    assert len(s.bias_v) == 9 and s.bias_v[0] == -0.02 and s.bias_v[-1] == 0.02 and s.bias_v[4] == 0.0
    assert s.temp_c == (27.0,) and s.corners == ("tt",) and s.vdd_v == () and s.mismatch_instances == 0
    a = s.adaptive
    assert a.target_p1_ci_halfwidth == 0.02 and a.chunk_s == pytest.approx(10e-6)
    assert a.max_duration_s == pytest.approx(200e-6)
    # with both 'duration' and [adaptive], duration is each point's minimum: 2 chunks of 10 us
    assert a.min_chunks == 2 and a.max_chunks == 20


def test_same_text_same_hash_and_changes_change_it(tmp_path):
    a = load_spec(write(tmp_path, EXAMPLE, "a.toml"))
    b = load_spec(write(tmp_path, EXAMPLE, "b.toml"))
    assert a.sha256() == b.sha256()
    c = load_spec(write(tmp_path, EXAMPLE.replace("seed = 1", "seed = 2"), "c.toml"))
    assert c.sha256() != a.sha256()


def test_list_and_step_axes(tmp_path):
    s = load_spec(write(tmp_path, 'cell="x"\nduration="2us"\n[grid]\nbias=[-1e-3, "2mV", 0.003]\n'
                                  'vdd={start=0.05, stop=0.07, step=0.01}\ntemperature=[-40, 27, 85]\n'))
    assert s.bias_v == (-1e-3, 2e-3, 3e-3)
    assert s.vdd_v == pytest.approx((0.05, 0.06, 0.07))
    assert s.temp_c == (-40.0, 27.0, 85.0)
    assert s.adaptive is None and s.duration_s == pytest.approx(2e-6)


@pytest.mark.parametrize("text, key, fragment", [
    ('cell="x"\nduration="20us"\nbogus=1\n', "bogus", "unknown key"),
    ('cell="x"\nduration="20us"\n[grid]\nbiass=[0]\n', "biass", "did you mean 'bias'"),
    ('cell="x"\nduration="20uV"\n', "duration", "unexpected unit"),
    ('cell="x"\nduration="20us"\nnoise_step="1nV"\n', "noise_step", "unexpected unit"),
    ('cell="x"\nduration="20us"\n[grid]\nbias=[]\n', "grid.bias", "empty axis"),
    ('cell="x"\nduration="20us"\n[grid]\ncorner=[]\n', "grid.corner", "empty axis"),
    ('cell="x"\nduration="20us"\n[grid]\ntemperature=[]\n', "grid.temperature", "empty axis"),
    ('cell="x"\nduration="20us"\n[grid]\nbias={start=0, stop=1, step=-0.1}\n', "grid.bias.step", "never reaches"),
    ('cell="x"\nduration="20us"\n[grid]\nbias={start=0, stop=1}\n', "grid.bias", "exactly one of"),
    ('cell="x"\nduration="20us"\n[grid]\nbias={start=0, stop=1, num=0}\n', "grid.bias.num", "must be ≥ 1"),
    ('cell="x"\nduration="20us"\n[grid]\nbias=[0, 0.0]\n', "grid.bias", "duplicate"),
    ('cell="x"\nduration="20us"\n[grid]\nmismatch_instances=-1\n', "grid.mismatch_instances", "≥ 0"),
    ('cell="x"\nduration="20us"\n[grid]\nvdd=[-0.1]\n', "grid.vdd", "> 0"),
    ('cell="x"\nduration="-1us"\n', "duration", "> 0"),
    ('cell="x"\n', "duration", "missing"),
    ('duration="1us"\n', "cell", "missing"),
    ('cell="x"\nduration="20us"\nseed=1.5\n', "seed", "whole number"),
    ('cell="x"\nduration="20us"\nexecutor="slurm"\n', "executor", "local"),
    ('cell="x"\n[adaptive]\ntarget_p1_ci_halfwidth=0.7\nchunk="1us"\nmax_duration="5us"\n',
     "adaptive.target_p1_ci_halfwidth", "(0, 0.5)"),
    ('cell="x"\n[adaptive]\ntarget_p1_ci_halfwidth=0.02\nchunk="10us"\nmax_duration="5us"\n',
     "adaptive.max_duration", "shorter than one chunk"),
    ('cell="x"\n[adaptive]\ntarget_p1_ci_halfwidth=0.02\nchunk="10us"\n', "adaptive.max_duration", "missing"),
    ('cell="x"\nduration="3ns"\n', "duration", "fewer than 10 noise steps"),
    ('cell="x"\nduration="20us"\n[params]\nWP="abc; .control"\n', "params.WP", "cannot read"),
])
def test_malformed_specs(tmp_path, text, key, fragment):
    p = write(tmp_path, text)
    with pytest.raises(InputError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)), msg
    assert key in msg and fragment in msg, msg


def test_not_toml_and_missing_file(tmp_path):
    p = write(tmp_path, "cell = \n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_spec(p)
    with pytest.raises(InputError, match="no such sweep spec"):
        load_spec(tmp_path / "nope.toml")


def test_cli_reports_bad_spec_with_exit_2(tmp_path, capsys):
    from noisecell.cli import main

    p = write(tmp_path, 'cell="x"\nduration="20us"\n[grid]\nbias=[]\n')
    code = main(["sweep", str(p), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("noisecell: error: ") and "grid.bias" in err[0]


def test_issue_example_expands_on_the_reference_cell(tmp_path):
    from noisecell.sweep.jobs import expand

    jobs = expand(load_spec(write(tmp_path, EXAMPLE)))
    assert len(jobs) == 9 and [j.conditions["bias_v"] for j in jobs][4] == 0.0
    assert all(len(j.chunk_jobs) == 20 for j in jobs)          # 200 us / 10 us
    assert all(j.chunk_jobs[0].duration_s == pytest.approx(10e-6) for j in jobs)
