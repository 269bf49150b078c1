"""JSON Schema validation of noisecell's input files (cell.toml, trims.json, sweep and characterisation
specs, measurement metadata), with one-line errors.

The schemas live in ``noisecell/schemas/*.json`` (JSON Schema 2020-12, checked with the
``jsonschema`` library rather than hand-written validators: one declarative description per format,
which the docs can point at, and unknown keys refused by ``additionalProperties: false``). Every
property carries a ``description``; an error quotes it as the fix. Checks a schema cannot express
(a ``.param`` exists in the netlist, a nominal value inside its range, SI strings like "20us") stay
in the loaders.
"""
from __future__ import annotations

import difflib
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import InputError


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The schema ``noisecell/schemas/<name>`` as a dict."""
    return json.loads(resources.files("noisecell.schemas").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str):
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _key(parts) -> str:
    return f"key {_path(parts)!r}" if parts else "top level"


def _subschema_at(schema: dict, path) -> dict:
    """The (first) subschema describing the value at ``path`` (for its description), or {}."""
    node = schema
    for p in path:
        if not isinstance(node, dict):
            return {}
        node = _resolve_ref(schema, node)
        if isinstance(p, int):
            node = node.get("items", {})
        elif p in node.get("properties", {}):
            node = node["properties"][p]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return _resolve_ref(schema, node) if isinstance(node, dict) else {}


def _resolve_ref(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        target = schema
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err, schema: dict) -> str:
    """One line: key path, what is wrong, and the fix."""
    path = list(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        here = _resolve_ref(schema, err.schema)  # the table's own schema (also inside an anyOf)
        known = sorted(here.get("properties", {}))
        extra = [k for k in err.instance if k not in here.get("properties", {})]
        key = extra[0] if extra else "?"
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += here.get("x-unknown-key-hint", "")
        where = f"in [{_path(path)}]" if path else "at top level"
        known_txt = f"known keys: {', '.join(known)}" if known else "remove it"
        return f"unknown key {key!r} {where}; {hint}{known_txt}"
    desc = _subschema_at(schema, path).get("description")
    fix = f" ({desc})" if desc else ""
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        d = _subschema_at(schema, path + [missing]).get("description")
        return f"missing required key {_path(path + [missing])!r}" + (f" ({d})" if d else "")
    if v == "type":
        names = {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false",
                 "array": "a list", "object": "a table", "null": "nothing"}
        want = " or ".join(names.get(t, t) for t in ([err.validator_value] if isinstance(err.validator_value, str)
                                                      else err.validator_value))
        return f"{_key(path)}: expected {want}, got {_describe(err.instance)}{fix}"
    if v == "enum":
        return f"{_key(path)}: {_describe(err.instance)} is not one of {', '.join(map(repr, err.validator_value))}{fix}"
    bound = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}.get(v)
    if bound:
        return f"{_key(path)}: must be {bound} {err.validator_value:g}, got {_describe(err.instance)}{fix}"
    if v == "not":
        return f"{_key(path)}: {desc or 'not allowed here'}"
    if v in ("anyOf", "oneOf"):
        return f"{_key(path)}: {_describe(err.instance)} is not valid here{fix}"
    return f"{_key(path)}: {err.message}{fix}"


def validate(data: Any, schema_name: str, source: str) -> None:
    """Raise :class:`InputError` "``source``: key.path: problem (fix)" if ``data`` breaks the schema."""
    bad = _non_finite(data, [])
    if bad is not None:
        raise InputError(f"{source}: {_key(bad)}: {_describe(_at(data, bad))} is not a finite number; give a number")
    errors = list(_validator(schema_name).iter_errors(data))
    if not errors:
        return
    # the deepest error is the one closest to the user's typo; among equals an unknown key (a typo)
    # first, an "anyOf" (which only says that no alternative fitted) last; then sorted by path, so
    # the choice is deterministic
    err = _pick(errors)
    while err.validator in ("anyOf", "oneOf") and err.context:
        # no alternative fitted: say what is wrong with the one the value looks like (a table with
        # a typo is a bad range, not "not a number"), i.e. the alternatives' non-type errors
        specific = [e for e in err.context if e.validator != "type"]
        if not specific:
            break
        err = _pick(specific)
    raise InputError(f"{source}: {_message(err, load_schema(schema_name))}{_item_label(data, list(err.absolute_path))}")


def _item_label(data: Any, path: list) -> str:
    """" (capture[0] is file 'a.npy')" for the first array item on ``path`` that names itself."""
    node, walked = data, []
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return ""
        walked.append(p)
        if isinstance(p, int) and isinstance(node, dict):
            for k in ("file", "name"):
                if isinstance(node.get(k), str):
                    return f" ({_path(walked)} is {k} {node[k]!r})"
    return ""


def _pick(errors):
    rank = {"additionalProperties": 0, "anyOf": 2, "oneOf": 2}
    return min(errors, key=lambda e: (-len(e.absolute_path), rank.get(e.validator, 1), _path(e.absolute_path),
                                      e.validator))


def _non_finite(obj: Any, path: list) -> list | None:
    """Path of the first NaN/±inf in ``obj`` (TOML allows them; no noisecell input means one), else None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _non_finite(v, path + [k])
        if found is not None:
            return found
    return None


def _at(obj: Any, path: list) -> Any:
    for p in path:
        obj = obj[p]
    return obj
