"""JSON Schemas of noisecell's input files: valid schemas, documented properties, repo files valid."""
from __future__ import annotations

import json
import tomllib
from importlib import resources

import pytest
from jsonschema import Draft202012Validator

from noisecell.cells import list_cells, spice_models_dir
from noisecell.errors import InputError
from noisecell.schema import load_schema, validate

INPUT_SCHEMAS = ("cell-v1.json", "trims-v1.json", "sweep-spec-v1.json", "characterize-spec-v1.json",
                 "measurements-v1.json")


def _undocumented(node, where="") -> list[str]:
    """Paths of properties (at any depth) without a description."""
    out = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if not isinstance(sub, dict) or not sub.get("description"):
                out.append(f"{where}.{name}")
        for key, sub in node.items():
            if isinstance(sub, dict):
                out += _undocumented(sub, f"{where}.{key}" if key != "properties" else where)
            elif isinstance(sub, list):
                for i, s in enumerate(sub):
                    out += _undocumented(s, f"{where}.{key}[{i}]")
    return out


@pytest.mark.parametrize("name", INPUT_SCHEMAS)
def test_schema_is_valid_and_every_property_is_described(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema.get("description") and schema.get("additionalProperties") is False
    assert _undocumented(schema) == []


def test_undocumented_helper_can_fail():
    assert _undocumented({"properties": {"a": {"type": "number"}}}) == [".a"]


def test_repo_files_are_valid():
    for cell in list_cells():
        d = spice_models_dir() / cell
        validate(tomllib.loads((d / "cell.toml").read_text()), "cell-v1.json", cell)
        if (d / "trims.json").is_file():
            validate(json.loads((d / "trims.json").read_text()), "trims-v1.json", cell)
    text = resources.files("noisecell.report").joinpath("default_spec.toml").read_text()
    validate(tomllib.loads(text), "characterize-spec-v1.json", "default_spec.toml")
    from noisecell.measurements import load_measurements

    root = spice_models_dir().parent / "measurements" / "synthetic-pbit-example"
    assert load_measurements(root).captures


@pytest.mark.parametrize("data, match", [
    ({"cell": "x", "duration": "1us", "grid": {"bias": {"start": 0, "stop": 1, "nun": 3}}},
     r"unknown key 'nun' in \[grid.bias\]; did you mean 'num'"),
    ({"cell": "x", "duration": "1us", "retries": 99}, r"key 'retries': must be ≤ 3, got 99"),
    ({"cell": "x", "duration": float("nan")}, r"key 'duration': nan is not a finite number"),
    ({"cell": "x", "duration": "1us", "grid": {"bias": [0.0, float("inf")]}}, r"key 'grid.bias\[1\]': inf"),
    ({"cell": "x", "duraton": "1us"}, r"unknown key 'duraton' at top level; did you mean 'duration'"),
])
def test_sweep_spec_errors_are_one_line_with_key_and_fix(data, match):
    with pytest.raises(InputError, match=match) as ei:
        validate(data, "sweep-spec-v1.json", "spec.toml")
    assert str(ei.value).startswith("spec.toml: ") and "\n" not in str(ei.value)


def test_trims_json_is_validated_on_load(tmp_path):
    import shutil

    from noisecell.cells import load_cell

    d = tmp_path / "pbit"
    shutil.copytree(spice_models_dir() / "pbit", d)
    data = json.loads((d / "trims.json").read_text())
    data["trims"]["VGP"][0]["vdd"] = 0.1          # a hand edit with a typo
    (d / "trims.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"trims.json: unknown key 'vdd' in \[trims.VGP\[0\]\]; did you mean 'vdd_v'"):
        load_cell(str(d))
