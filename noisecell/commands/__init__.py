"""One module per CLI command; see :mod:`noisecell.cli`.

:func:`print_json` is the one place a command prints JSON: whatever a result holds, stdout gets
strict JSON (NaN and ±inf become null, numpy scalars plain numbers; ``allow_nan=False`` guarantees
no ``NaN`` literal ever reaches a consumer such as ``jq`` or a JSON parser in another language).
"""
from __future__ import annotations

import json
import math
from typing import Any


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None and numpy scalars/arrays made plain Python."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def print_json(obj: Any, **kwargs) -> None:
    """Print ``obj`` as one line of strict JSON on stdout (kwargs go to json.dumps, e.g. sort_keys)."""
    kwargs.setdefault("default", str)
    print(json.dumps(json_safe(obj), allow_nan=False, **kwargs), flush=True)
