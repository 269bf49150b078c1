"""The calibrated behavioural cell model: a versioned, schema-validated JSON document and its evaluator.

The physical picture: the cell's output is a two-state continuous-time Markov chain (CTMC) with an
up-rate ``k_up(V)`` (0→1, 1/s) and a down-rate ``k_down(V)`` (1→0, 1/s) set by the bias ``V`` (V).
Everything else follows from the two rates and is therefore self-consistent by construction:

* ``P(1) = k_up / (k_up + k_down)``; ``ln k_up`` and ``ln k_down`` are quadratics in ``V``
  (:mod:`noisecell.model.ratemodel`, schema 2.2; straight lines in older files) with a common curvature
  unless the fit found them different, so P(1) is a logistic sigmoid with ``v50_v`` where the two
  rates are equal and ``scale_v = 1 / (slope_up - slope_down)`` at V50 (exactly logistic when the
  curvatures are equal), while ``tau`` carries the curvature;
* ``tau = 1 / (k_up + k_down)`` (s), the autocorrelation time of the telegraph output;
* the exact ``dt``-step transition probabilities (see :mod:`noisecell.model.sampler`).

Operating conditions are (corner, temp_c, vdd_v). Between two calibrated temperatures of the same
corner and supply, ``ln k_up`` and ``ln k_down`` are interpolated linearly in temperature (their
variances combine as independent fits). Outside the calibrated bias range, temperatures, corners or
supplies the model refuses to answer (:class:`OutOfRangeError`): it is a calibration, not physics.

Cell-to-cell mismatch is an affine transform of the bias seen by cell ``i``::

    V_eff = v50 + (V - v50 - dv50_i) / g_i,     g_i = exp(d ln scale_i)

so cell ``i`` has its sigmoid centred at ``v50 + dv50_i`` with scale ``scale * g_i``, and its
``tau`` at its own midpoint equals the nominal ``tau`` at ``v50``. ``(dv50_i, d ln scale_i)`` are
drawn from a bivariate normal with the spreads and correlation measured across Monte Carlo
instances.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import InputError
from .instances import CellInstances  # re-exported: noisecell.model.cellmodel.CellInstances
from . import ratemodel
from .ratemodel import max_abs_ln_rate
from ..constants import Z95  # re-exported for model.fit and tests

#: the version this noisecell writes; files of major version 1 and of 2.0/2.1 are still read (upgraded in
#: memory: version 2 is version 1 plus optional blocks; 2.1 states the energy block's energy per bit as
#: P·τ(V50) with its CI, see model.energy, which restates a 1.x/2.0 block from its own power and τ(V50);
#: 2.2 adds the curvature of ln k_up / ln k_down to the loglinear rate model with a 6×6 covariance, see
#: model.ratemodel, which reads an older block as curvature 0)
SCHEMA_VERSION = "2.2.0"
SCHEMA_FILE = "cell-model-v2.json"
SCHEMA_FILES = {1: "cell-model-v1.json", 2: "cell-model-v2.json"}


class OutOfRangeError(InputError, ValueError):
    """A query outside the model's validated bias range, temperatures, corners or supplies."""


@lru_cache(maxsize=2)
def schema(major: int = 2) -> dict:
    """The cell-model JSON Schema (draft 2020-12) of a major version (default: the current one)."""
    text = resources.files("noisecell.schemas").joinpath(SCHEMA_FILES[major]).read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=2)
def _validator(major: int = 2):
    import jsonschema

    cls = jsonschema.Draft202012Validator
    return cls(schema(major), format_checker=cls.FORMAT_CHECKER)


def schema_major(doc: Any) -> int:
    """Major version of a document's ``schema_version`` that this noisecell reads (1 or 2); the current
    one when the field is missing or unreadable (the schema then names the problem)."""
    v = doc.get("schema_version") if isinstance(doc, dict) else None
    if isinstance(v, str) and v.split(".")[0] in ("1", "2") and v.count(".") == 2:
        return int(v.split(".")[0])
    return 2


def _older_than(doc: dict, version: tuple[int, int]) -> bool:
    v = str(doc.get("schema_version", ""))
    try:
        major, minor = (int(x) for x in v.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < version


def _older_than_2_1(doc: dict) -> bool:
    return _older_than(doc, (2, 1))


def _first_violation(doc: Any) -> str | None:
    """One-line description of the first schema violation of ``doc`` (None when valid).

    "First" is deterministic: errors are ordered by their location in the document (the order a
    reader meets them), and within a location by jsonschema's relevance ranking.
    """
    import jsonschema

    errors = list(_validator(schema_major(doc)).iter_errors(doc))
    if not errors:
        return None
    errors.sort(key=lambda e: (tuple(str(p) for p in e.absolute_path), jsonschema.exceptions.relevance(e)))
    err = jsonschema.exceptions.best_match([e for e in errors if e.absolute_path == errors[0].absolute_path])
    where = "/" + "/".join(str(p) for p in err.absolute_path)
    msg = err.message if len(err.message) <= 160 else err.message[:157] + "..."
    return f"at {where}: {msg}"


def _semantic_violation(doc: dict) -> str | None:
    """Checks JSON Schema cannot express: ordered ranges, matrix properties, nominal present."""
    def _range_ok(r):
        return r[0] < r[1]

    if not _range_ok(doc["bias"]["range_v"]):
        return "at /bias/range_v: low must be below high"
    keys = set()
    for i, c in enumerate(doc["conditions"]):
        where = f"/conditions/{i}"
        key = (c["corner"], float(c["temp_c"]), float(c["vdd_v"]))
        if key in keys:
            return f"at {where}: duplicate condition {key}"
        keys.add(key)
        lo, hi = c["bias_range_v"]
        if not lo < hi:
            return f"at {where}/bias_range_v: low must be below high"
        rm = c["rate_model"]
        if rm["kind"] == "loglinear":
            cov = np.asarray(rm["covariance"], float)
            if not np.allclose(cov, cov.T, rtol=1e-6, atol=0.0):
                return f"at {where}/rate_model/covariance: matrix is not symmetric"
            if np.min(np.linalg.eigvalsh(0.5 * (cov + cov.T))) < -1e-9 * max(1.0, float(np.max(np.abs(cov)))):
                return f"at {where}/rate_model/covariance: matrix is not positive semi-definite"
            if (rm["ln_k_up"]["slope_per_v"] - rm["ln_k_down"]["slope_per_v"] == 0
                    and rm["ln_k_up"].get("curvature_per_v2", 0.0) == rm["ln_k_down"].get("curvature_per_v2", 0.0)):
                return (f"at {where}/rate_model: ln_k_up and ln_k_down have the same slope, so P(1) "
                        "does not depend on the bias")
            for name, j in (("ln_k_up", 4), ("ln_k_down", 5)):
                co = rm[name]
                if len(cov) == 4 and co.get("curvature_per_v2", 0.0) != 0:
                    return (f"at {where}/rate_model/{name}/curvature_per_v2: a curvature needs the 6x6 covariance "
                            "(intercepts, slopes, curvatures) to state its uncertainty")
                se = co.get("curvature_se_per_v2")
                var = float(cov[j, j]) if len(cov) == 6 else 0.0
                if se is not None and not math.isclose(se, math.sqrt(max(var, 0.0)), rel_tol=1e-6, abs_tol=1e-300):
                    return (f"at {where}/rate_model/{name}/curvature_se_per_v2: {se:g} is not the square root of "
                            f"the covariance's curvature variance ({math.sqrt(max(var, 0.0)):g})")
        else:
            n = len(rm["bias_v"])
            for name in ("ln_k_up", "ln_k_down", "ln_k_up_se", "ln_k_down_se"):
                if len(rm[name]) != n:
                    return f"at {where}/rate_model/{name}: length {len(rm[name])} differs from bias_v ({n})"
            if np.any(np.diff(rm["bias_v"]) <= 0):
                return f"at {where}/rate_model/bias_v: must be strictly increasing"
        tau = c["tau"]
        if not (len(tau["bias_v"]) == len(tau["tau_s"]) == len(tau["tau_ci95_s"])):
            return f"at {where}/tau: bias_v, tau_s and tau_ci95_s must have the same length"
        dist = (c.get("mismatch") or {}).get("distribution")
        if dist:
            cov = np.asarray(dist["covariance"], float)
            if not np.allclose(cov, cov.T, rtol=1e-6, atol=0.0):
                return f"at {where}/mismatch/distribution/covariance: matrix is not symmetric"
            if np.min(np.linalg.eigvalsh(0.5 * (cov + cov.T))) < -1e-9 * max(1e-30, float(np.max(np.abs(cov)))):
                return f"at {where}/mismatch/distribution/covariance: matrix is not positive semi-definite"
            if abs(float(dist["mean"][2])) > MAX_ABS_LN_RATE or float(np.max(np.diag(cov))) > 1e4:
                return f"at {where}/mismatch/distribution: ln gain / ln tau ratio beyond any physical cell"
    nom = doc["nominal_condition"]
    if (nom["corner"], float(nom["temp_c"]), float(nom["vdd_v"])) not in keys:
        return "at /nominal_condition: not one of the calibrated conditions"
    return None


#: the largest model file noisecell reads (a model of hundreds of conditions is well under 1 MB)
MAX_MODEL_BYTES = 16 * 2**20
#: the deepest nesting of arrays/objects a model may have (the schema's deepest path is under 12)
MAX_JSON_DEPTH = 32
#: |ln k| above this overflows exp() in double precision (e^709.8 is the largest double)
MAX_ABS_LN_RATE = 700.0


def _structure_violation(doc: Any) -> str | None:
    """Non-finite numbers and excessive nesting, found without recursion (a hostile document can be
    nested deeper than Python's recursion limit; JSON Schema treats NaN as passing every bound)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"at {where or '/'}: nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(node, float) and not math.isfinite(node):
            return f"at {where or '/'}: {node!r} is not a finite number"
        if isinstance(node, dict):
            stack.extend((v, f"{where}/{k}", depth + 1) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}/{i}", depth + 1) for i, v in enumerate(node))
    return None


def _ln_rate_violation(doc: dict) -> str | None:
    """ln k at the ends of each condition's bias range must stay where exp() is finite."""
    for i, c in enumerate(doc["conditions"]):
        rm = c["rate_model"]
        if rm["kind"] != "loglinear":
            continue
        ln, v, name = max_abs_ln_rate(rm, *c["bias_range_v"])
        if not ln <= MAX_ABS_LN_RATE:
            return (f"at /conditions/{i}/rate_model/{name}: |ln k| = {ln:.4g} at bias {v:g} V is beyond "
                    f"±{MAX_ABS_LN_RATE:g} (a rate exp(ln k) that overflows)")
    return None


def loads_model_json(text: str | bytes, source: str) -> Any:
    """Parse model JSON strictly: NaN/Infinity literals and overflowing numbers (1e999) refused,
    nesting bounded; :class:`InputError` naming ``source``."""
    def constant(name: str):
        raise ValueError(f"{name} is not a finite number")

    def finite_float(txt: str) -> float:
        x = float(txt)
        if not math.isfinite(x):
            raise ValueError(f"{txt} is not a finite number")
        return x

    try:
        return json.loads(text, parse_constant=constant, parse_float=finite_float)
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels allowed); "
                         "regenerate it with `noisecell fit`") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                         "regenerate it with `noisecell fit`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: not a valid cell model: {exc} (only finite numbers are allowed); "
                         "regenerate it with `noisecell fit`") from None


def validate_document(doc: Any, source: str = "<cell model>") -> None:
    """Raise :class:`InputError` naming ``source`` and the first violation unless ``doc`` is valid."""
    problem = _structure_violation(doc)
    if problem is None:
        problem = _first_violation(doc)
    if problem is None:
        problem = _semantic_violation(doc) or _ln_rate_violation(doc)
    if problem is not None:
        raise InputError(f"{source}: not a valid noisecell cell model ({SCHEMA_FILES[schema_major(doc)]}) {problem}; "
                         "regenerate it with `noisecell fit` or correct that field")


@dataclass(frozen=True, order=True)
class Condition:
    """An operating condition: process corner, temperature (°C) and supply voltage (V)."""

    corner: str
    temp_c: float
    vdd_v: float

    def label(self) -> str:
        return f"{self.corner}/{self.temp_c:g} °C/{self.vdd_v:g} V"

    def to_dict(self) -> dict:
        return {"corner": self.corner, "temp_c": float(self.temp_c), "vdd_v": float(self.vdd_v)}


class _ConditionRates:
    """ln k_up, ln k_down (ln 1/s) and their (co)variances vs bias for one stored condition: a loglinear
    block is evaluated by :mod:`noisecell.model.ratemodel` (curvature included), a tabulated one by
    linear interpolation in ln k."""

    def __init__(self, rm: Mapping):
        self.kind = rm["kind"]
        if self.kind == "loglinear":
            self.rm = ratemodel.coefficients(rm)   # parsed once: (reference, θ, 6×6 covariance)
        else:
            self.grid = np.asarray(rm["bias_v"], float)
            self.lu = np.asarray(rm["ln_k_up"], float)
            self.ld = np.asarray(rm["ln_k_down"], float)
            self.su = np.asarray(rm["ln_k_up_se"], float)
            self.sd = np.asarray(rm["ln_k_down_se"], float)

    def ln_rates(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "loglinear":
            return ratemodel.ln_rates(self.rm, v)
        # linear interpolation in ln k; np.interp holds the end values outside the grid
        return np.interp(v, self.grid, self.lu), np.interp(v, self.grid, self.ld)

    def moments(self, v: np.ndarray):
        """(lu, ld, var_lu, var_ld, cov_lu_ld) at bias ``v`` (V)."""
        if self.kind == "loglinear":
            return ratemodel.moments(self.rm, v)
        lu, ld = self.ln_rates(v)
        # interpolated grid values: independent per-point errors (each point is its own stream set);
        # the up and down estimates of one point are treated as uncorrelated.
        idx = np.clip(np.searchsorted(self.grid, v) - 1, 0, len(self.grid) - 2)
        w = np.clip((v - self.grid[idx]) / (self.grid[idx + 1] - self.grid[idx]), 0.0, 1.0)
        var_u = ((1 - w) * self.su[idx]) ** 2 + (w * self.su[idx + 1]) ** 2
        var_d = ((1 - w) * self.sd[idx]) ** 2 + (w * self.sd[idx + 1]) ** 2
        return lu, ld, var_u, var_d, np.zeros_like(np.asarray(v, float))


class ResolvedCondition:
    """A stored condition, or a linear-in-temperature blend of two stored conditions."""

    def __init__(self, condition: Condition, parts: list[tuple[float, dict]]):
        self.condition = condition
        self.parts = parts  # (weight, stored condition dict)
        self._rates = [(w, _ConditionRates(c["rate_model"])) for w, c in parts]
        ranges = np.array([c["bias_range_v"] for _, c in parts], float)
        # a blend is only validated where both ends are
        self.bias_range_v = (float(ranges[:, 0].max()), float(ranges[:, 1].min()))
        self.v50_v = float(sum(w * c["sigmoid"]["v50_v"] for w, c in parts))
        self.scale_v = float(sum(w * c["sigmoid"]["scale_v"] for w, c in parts))
        self.mismatch = self._blend_mismatch()
        self.interpolated = len(parts) > 1

    def _blend_mismatch(self) -> dict | None:
        mms = [(w, c["mismatch"]) for w, c in self.parts]
        if any(m is None for _, m in mms):
            return None
        out = {k: float(sum(w * m[k] for w, m in mms)) for k in ("v50_sd_v", "ln_scale_sd", "correlation")}
        dists = [(w, m.get("distribution")) for w, m in mms]
        if all(d for _, d in dists):
            out["distribution"] = {
                "mean": [float(sum(w * d["mean"][j] for w, d in dists)) for j in range(3)],
                "covariance": [[float(sum(w * d["covariance"][j][k] for w, d in dists)) for k in range(3)]
                               for j in range(3)]}
        return out

    def ln_rates(self, v) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(v, float)
        lu = np.zeros_like(v)
        ld = np.zeros_like(v)
        for w, r in self._rates:
            a, b = r.ln_rates(v)
            lu = lu + w * a
            ld = ld + w * b
        return lu, ld

    def moments(self, v):
        v = np.asarray(v, float)
        acc = [np.zeros_like(v) for _ in range(5)]
        for w, r in self._rates:
            m = r.moments(v)
            for j in range(5):
                # means combine linearly, (co)variances with w**2 (independent fits per temperature)
                acc[j] = acc[j] + (w if j < 2 else w * w) * m[j]
        return tuple(acc)


def _as_array(x) -> tuple[np.ndarray, bool]:
    arr = np.asarray(x, dtype=float)
    return arr, arr.ndim == 0


class CellModel:
    """A calibrated two-state Markov model of a random-bit cell (see the module docstring).

    Construct with :meth:`load` (file) or :meth:`from_dict`; both validate against the schema.
    All biases are in V, times in s, rates in 1/s.
    """

    def __init__(self, doc: dict, *, source: str = "<cell model>", validate: bool = True):
        if validate:
            validate_document(doc, source)
        #: the version the document was written in (a v1 file is upgraded in memory and saved as v2)
        self.read_schema_version = doc.get("schema_version") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and _older_than(doc, (2, 2)):
            # 1.x, 2.0 and 2.1 files: the version string; the energy block's energy per bit restated as
            # P·τ(V50) before 2.1 (the file's own record P·τ kept as record_energy_per_bit_j; model.energy);
            # the loglinear rate model's straight lines as curvature 0 with a 6×6 covariance (model.ratemodel)
            from .energy import upgrade_energy

            conds = [upgrade_energy(c) for c in doc["conditions"]] if _older_than_2_1(doc) else list(doc["conditions"])
            doc = {**doc, "schema_version": SCHEMA_VERSION,
                   "conditions": [{**c, "rate_model": ratemodel.upgrade(c["rate_model"])} for c in conds]}
        self._doc = doc
        self.source = source
        self.conditions: list[Condition] = [
            Condition(str(c["corner"]), float(c["temp_c"]), float(c["vdd_v"])) for c in doc["conditions"]]
        self._by_key = {cond: c for cond, c in zip(self.conditions, doc["conditions"])}
        n = doc["nominal_condition"]
        self.nominal = Condition(str(n["corner"]), float(n["temp_c"]), float(n["vdd_v"]))
        #: (corner, vdd, t_lo, t_hi) -> the stored check of interpolating between two calibrated temperatures
        self.interpolation_checks = list(doc.get("interpolation_checks") or [])
        #: conditions simulated but not characterised, with what was seen
        self.excluded_conditions = list(doc.get("excluded_conditions") or [])

    # ----------------------------------------------------------------- persistence
    @classmethod
    def from_dict(cls, doc: dict, *, source: str = "<cell model>") -> "CellModel":
        return cls(doc, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CellModel":
        """Read and validate a model file; :class:`InputError` naming the file on any problem."""
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_MODEL_BYTES:
                raise InputError(f"{p}: {size / 2**20:.1f} MiB is over the {MAX_MODEL_BYTES / 2**20:g} MiB limit for a "
                                 "cell model; a real model is a few kB, check the file")
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{p}: no such cell model file; create one with `noisecell fit SWEEP_DIR --out {p}`") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: cannot read the cell model ({exc.__class__.__name__}: {exc}); check the path") from None
        return cls(loads_model_json(text, str(p)), source=str(p))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self._doc))

    def save(self, path: str | os.PathLike) -> Path:
        """Validate, then write atomically (a crash never leaves a half-written model)."""
        p = Path(path)
        validate_document(self._doc, str(p))
        from ..atomic import atomic_write

        return atomic_write(p, json.dumps(self._doc, indent=1, allow_nan=False) + "\n")

    # ----------------------------------------------------------------- metadata
    @property
    def name(self) -> str:
        return self._doc["cell"]["name"]

    @property
    def bias_param(self) -> str:
        return self._doc["bias"]["param"]

    def condition_data(self, condition=None) -> dict:
        """The stored JSON block of a calibrated condition (no interpolation)."""
        cond = self._match(condition)
        if cond not in self._by_key:
            raise OutOfRangeError(f"{self.source}: {cond.label()} is not a calibrated condition; "
                                  f"calibrated: {', '.join(c.label() for c in self.conditions)}")
        return json.loads(json.dumps(self._by_key[cond]))

    # ----------------------------------------------------------------- conditions
    def _match(self, condition) -> Condition:
        if condition is None:
            return self.nominal
        if isinstance(condition, Condition):
            return condition
        if isinstance(condition, Mapping):
            unknown = set(condition) - {"corner", "temp_c", "vdd_v"}
            if unknown:
                raise InputError(f"{self.source}: unknown condition key(s) {sorted(unknown)}; use corner, temp_c, vdd_v")
            return Condition(str(condition.get("corner", self.nominal.corner)),
                             float(condition.get("temp_c", self.nominal.temp_c)),
                             float(condition.get("vdd_v", self.nominal.vdd_v)))
        if isinstance(condition, (tuple, list)) and len(condition) == 3:
            return Condition(str(condition[0]), float(condition[1]), float(condition[2]))
        raise InputError(f"{self.source}: cannot read condition {condition!r}; pass None, a Condition, "
                         "a dict with corner/temp_c/vdd_v, or a (corner, temp_c, vdd_v) tuple")

    def resolve(self, condition=None) -> ResolvedCondition:
        """The stored condition, or a temperature interpolation between the two nearest stored ones."""
        cond = self._match(condition)
        if cond in self._by_key:
            return ResolvedCondition(cond, [(1.0, self._by_key[cond])])
        available = ", ".join(c.label() for c in self.conditions)
        # "along_trim" (schema v2): the cell's trim sets the supply per temperature, so a corner's
        # conditions lie on one trim path (T, vdd(T)); interpolate along it whatever the query's vdd
        along = self._doc.get("temperature_interpolation") == "along_trim"
        same = [c for c in self.conditions if c.corner == cond.corner
                and (along or math.isclose(c.vdd_v, cond.vdd_v, rel_tol=1e-9, abs_tol=1e-12))]
        if not same:
            raise OutOfRangeError(f"{self.source}: no calibration for corner {cond.corner!r} at vdd {cond.vdd_v:g} V "
                                  f"(calibrated: {available}); fit a sweep that covers it")
        for c in same:
            if math.isclose(c.temp_c, cond.temp_c, rel_tol=0, abs_tol=1e-9):
                return ResolvedCondition(c, [(1.0, self._by_key[c])])
        below = [c for c in same if c.temp_c < cond.temp_c]
        above = [c for c in same if c.temp_c > cond.temp_c]
        if not below or not above:
            temps = sorted(c.temp_c for c in same)
            raise OutOfRangeError(f"{self.source}: temperature {cond.temp_c:g} °C is outside the calibrated range "
                                  f"[{temps[0]:g}, {temps[-1]:g}] °C for {cond.corner}/{cond.vdd_v:g} V; "
                                  "interpolation only, no extrapolation")
        lo = max(below, key=lambda c: c.temp_c)
        hi = min(above, key=lambda c: c.temp_c)
        for chk in self.interpolation_checks:
            if (chk["corner"] == cond.corner
                    and (along or math.isclose(chk["vdd_v"], cond.vdd_v, rel_tol=1e-9, abs_tol=1e-12))
                    and math.isclose(chk["between_c"][0], lo.temp_c, abs_tol=1e-9)
                    and math.isclose(chk["between_c"][1], hi.temp_c, abs_tol=1e-9) and not chk["passed"]):
                raise OutOfRangeError(
                    f"{self.source}: cannot interpolate {cond.corner}/{cond.vdd_v:g} V between {lo.temp_c:g} and "
                    f"{hi.temp_c:g} °C: the check at {chk['temp_c']:g} °C failed ({chk.get('note', 'see interpolation_checks')}); "
                    "use a calibrated temperature or characterise this one")
        w_hi = (cond.temp_c - lo.temp_c) / (hi.temp_c - lo.temp_c)
        if along:
            cond = Condition(cond.corner, cond.temp_c, (1.0 - w_hi) * lo.vdd_v + w_hi * hi.vdd_v)
        return ResolvedCondition(cond, [(1.0 - w_hi, self._by_key[lo]), (w_hi, self._by_key[hi])])

    def check_bias(self, bias, rc: ResolvedCondition) -> None:
        b = np.asarray(bias, float)
        if b.size == 0:
            return
        if not np.all(np.isfinite(b)):
            raise InputError(f"{self.source}: bias contains NaN or infinity; pass finite voltages")
        lo, hi = rc.bias_range_v
        # tolerance: one part in 1e9 of the range, so the stored end points themselves are accepted
        tol = 1e-9 * (hi - lo)
        bmin, bmax = float(b.min()), float(b.max())
        if bmin < lo - tol or bmax > hi + tol:
            bad = bmin if bmin < lo - tol else bmax
            raise OutOfRangeError(f"{self.source}: bias {bad:.6g} V is outside the validated range "
                                  f"[{lo:.6g}, {hi:.6g}] V of {rc.condition.label()}; pass a bias inside it "
                                  "or fit a sweep that covers it")

    # ----------------------------------------------------------------- physics
    def ln_rates(self, bias, condition=None) -> tuple[np.ndarray, np.ndarray]:
        """(ln k_up, ln k_down) in ln(1/s) at ``bias`` (V)."""
        rc = self.resolve(condition)
        self.check_bias(bias, rc)
        return rc.ln_rates(bias)

    def rates(self, bias, condition=None):
        """(k_up, k_down) in 1/s at ``bias`` (V): 0→1 and 1→0 transition rates."""
        lu, ld = self.ln_rates(bias, condition)
        b, scalar = _as_array(bias)
        ku, kd = np.exp(lu), np.exp(ld)
        return (float(ku), float(kd)) if scalar else (ku, kd)

    def p1(self, bias, condition=None):
        """Stationary P(1) at ``bias`` (V) = k_up / (k_up + k_down); float for a scalar bias."""
        lu, ld = self.ln_rates(bias, condition)
        p = 1.0 / (1.0 + np.exp(ld - lu))
        return float(p) if np.ndim(p) == 0 else p

    def tau(self, bias, condition=None):
        """Autocorrelation time tau (s) = 1 / (k_up + k_down) at ``bias`` (V)."""
        lu, ld = self.ln_rates(bias, condition)
        t = np.exp(-np.logaddexp(lu, ld))
        return float(t) if np.ndim(t) == 0 else t

    def _ci(self, bias, condition, which: str):
        rc = self.resolve(condition)
        self.check_bias(bias, rc)
        lu, ld, vu, vd, cud = rc.moments(bias)
        if which == "p1":
            # delta method on logit P(1) = ln k_up - ln k_down, mapped through the logistic
            m = lu - ld
            se = np.sqrt(np.maximum(vu + vd - 2 * cud, 0.0))
            lo, hi = 1 / (1 + np.exp(-(m - Z95 * se))), 1 / (1 + np.exp(-(m + Z95 * se)))
        else:
            # delta method on a log quantity whose gradient in (ln k_up, ln k_down) is (g_u, g_d), from
            # the rate fractions w: ln tau = -ln(k_up + k_down) has (-w_up, -w_down); ln(flip rate) =
            # ln 2 + ln k_up + ln k_down - ln(k_up + k_down) has (w_down, w_up) (a common sign flip leaves the SE)
            wu = 1 / (1 + np.exp(ld - lu))
            wd = 1 - wu
            if which == "tau":
                m, gu, gd = -np.logaddexp(lu, ld), wu, wd
            else:
                m, gu, gd = math.log(2.0) + lu + ld - np.logaddexp(lu, ld), wd, wu
            se = np.sqrt(np.maximum(gu * gu * vu + gd * gd * vd + 2 * gu * gd * cud, 0.0))
            lo, hi = np.exp(m - Z95 * se), np.exp(m + Z95 * se)
        if np.ndim(lo) == 0:
            return float(lo), float(hi)
        return lo, hi

    def p1_ci95(self, bias, condition=None):
        """95 % CI (low, high) of the model's P(1) at ``bias`` from the fit's parameter covariance."""
        return self._ci(bias, condition, "p1")

    def tau_ci95(self, bias, condition=None):
        """95 % CI (low, high) in s of the model's tau at ``bias`` from the fit's parameter covariance."""
        return self._ci(bias, condition, "tau")

    def flip_rate(self, bias, condition=None):
        """Transitions per second (both directions) of the stationary telegraph at ``bias`` (V):
        P0·k_up + P1·k_down = 2·k_up·k_down/(k_up + k_down) = 2·P0·P1/tau."""
        lu, ld = self.ln_rates(bias, condition)
        f = np.exp(math.log(2.0) + lu + ld - np.logaddexp(lu, ld))
        return float(f) if np.ndim(f) == 0 else f

    def flip_rate_ci95(self, bias, condition=None):
        """95 % CI (low, high) in 1/s of :meth:`flip_rate` from the fit's parameter covariance."""
        return self._ci(bias, condition, "flips")

    def v50(self, condition=None) -> float:
        """Bias (V) where P(1) = 0.5 (interpolated linearly in temperature between stored conditions)."""
        return self.resolve(condition).v50_v

    def scale(self, condition=None) -> float:
        """Logistic scale (V) of P(1) vs bias: P(1) = 1/(1+exp(-(V-v50)/scale)); negative when P(1) falls with bias."""
        return self.resolve(condition).scale_v

    def bias_range(self, condition=None) -> tuple[float, float]:
        """Validated bias range (V) of a condition."""
        return self.resolve(condition).bias_range_v

    # ----------------------------------------------------------------- mismatch and sampling
    def draw_instances(self, cells: int, seed=None, condition=None) -> CellInstances:
        """Per-cell mismatch (V50 offset in V, scale gain, τ ratio) drawn from the calibrated distribution.

        Schema v2 (a ``mismatch.distribution`` block): trivariate normal in (offset, ln gain, ln τ ratio)
        with the estimated mean and covariance. A v1 block: bivariate normal in (V50 offset, ln scale)
        with the measured spreads and correlation, zero mean, τ ratio 1. Nominal cells (no offset, unit
        gain and τ ratio) when the condition has no mismatch data. Seeded: same seed, same cells.
        """
        cells = int(cells)
        if cells < 1:
            raise InputError(f"{self.source}: number of cells must be at least 1 (got {cells})")
        rc = self.resolve(condition)
        if rc.mismatch is None:
            return CellInstances.nominal(cells)
        rng = np.random.default_rng(seed)
        dist = rc.mismatch.get("distribution")
        if dist:
            from .instances import draw_normal

            x = draw_normal(dist["mean"], dist["covariance"], cells, rng)
            return CellInstances(x[:, 0], np.exp(x[:, 1]), np.exp(x[:, 2]))
        s_v, s_l, rho = rc.mismatch["v50_sd_v"], rc.mismatch["ln_scale_sd"], rc.mismatch["correlation"]
        z = rng.standard_normal((cells, 2))
        dv = s_v * z[:, 0]
        dl = s_l * (rho * z[:, 0] + math.sqrt(max(0.0, 1 - rho * rho)) * z[:, 1])
        return CellInstances(dv, np.exp(dl))

    def effective_bias(self, bias, instances: CellInstances, rc: ResolvedCondition):
        """Bias (V) the nominal cell would need to behave like each mismatched cell at ``bias``."""
        v50 = rc.v50_v
        b = np.asarray(bias, float)
        dv = instances.dv50_v.reshape((-1,) + (1,) * (b.ndim - 1)) if b.ndim else instances.dv50_v
        g = instances.gain.reshape((-1,) + (1,) * (b.ndim - 1)) if b.ndim else instances.gain
        return v50 + (b - v50 - dv) / g

    def instance_ln_rates(self, bias, instances: CellInstances, rc: ResolvedCondition):
        """(ln k_up, ln k_down) of each mismatched cell at ``bias``: the nominal rates at the effective
        bias, divided by the cell's τ ratio (shape of ``bias`` broadcast with the cells on axis 0)."""
        lu, ld = rc.ln_rates(self.effective_bias(bias, instances, rc))
        b = np.asarray(bias, float)
        lr = np.log(instances.tau_ratio)
        lr = lr.reshape((-1,) + (1,) * (b.ndim - 1)) if b.ndim else lr
        return lu - lr, ld - lr

    def sample(self, bias, n_steps: int, dt: float, seed=None, cells: int | None = None, *,
               condition=None, mismatch: bool = True, instances: CellInstances | None = None,
               initial: str | np.ndarray = "stationary") -> np.ndarray:
        """Bits (uint8 0/1) of ``cells`` cells over ``n_steps`` steps of ``dt`` seconds.

        Exact discretisation of the CTMC for a bias held constant over each step. Shape
        ``(n_steps,)`` when ``cells`` is None, else ``(cells, n_steps)``. ``bias`` (V) is a scalar,
        per cell ``(cells,)`` / ``(cells, 1)``, per step ``(n_steps,)`` / ``(1, n_steps)``, or full
        ``(cells, n_steps)``. See :func:`noisecell.model.sampler.sample` for details.
        """
        from .sampler import sample as _sample  # here, not at the top: numba loads only when sampling

        return _sample(self, bias, n_steps, dt, seed=seed, cells=cells, condition=condition,
                       mismatch=mismatch, instances=instances, initial=initial)

    # ----------------------------------------------------------------- reporting
    def summary(self) -> str:
        d = self._doc
        lines = [f"cell model {self.name} (schema {d['schema_version']}, {d['provenance']['source']}, "
                 f"sweep {d['provenance'].get('sweep_id')})",
                 f"bias input {self.bias_param}: validated {d['bias']['range_v'][0]:.4g} .. {d['bias']['range_v'][1]:.4g} V"]
        for cond, c in self._by_key.items():
            s, t = c["sigmoid"], c["tau"]
            mark = " (nominal)" if cond == self.nominal else ""
            lines.append(f"  {cond.label()}{mark}: v50 {s['v50_v']:.5g} V, scale {s['scale_v']:.4g} V, "
                         f"tau(v50) {t['tau_at_v50_s']:.4g} s, "
                         f"mismatch {'none' if c['mismatch'] is None else format(c['mismatch']['v50_sd_v'], '.3g') + ' V sd(V50)'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CellModel({self.name!r}, conditions={len(self.conditions)}, source={self.source!r})"
