"""Entropy-source assessment of a bit stream: SP 800-90B non-IID estimators and AIS 31 tests.

    from noisecell.entropy import assess
    result = assess(bits)            # uint8/bool array of 0/1, e.g. BitStream.bits
    result.h_original                # min-entropy, bits per sample (min of the ten estimators)
    result.to_dict()                 # JSON-ready, the same object `noisecell entropy` prints
    print(result.summary())

The characterisation flow calls :func:`assess` once per bias point. See docs/entropy.md for the
formulas, the agreement with NIST's reference tool and what "not run" means for AIS 31.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ais31 as _ais31
from . import sp80090b
from .ais31 import AIS31Result, TestResult
from .sp80090b import (ESTIMATORS, MIN_SAMPLES, RECOMMENDED_SAMPLES, Estimate, all_estimates,
                       as_bits)

__all__ = ["assess", "EntropyAssessment", "Estimate", "AIS31Result", "TestResult", "ESTIMATORS",
           "MIN_SAMPLES", "RECOMMENDED_SAMPLES", "sp80090b", "ais31"]


@dataclass(frozen=True)
class EntropyAssessment:
    """SP 800-90B §6.3 estimates and AIS 31 tests of one binary stream.

    n_samples: stream length, samples (bits).
    estimates: the ten §6.3 estimators, keyed as :data:`ESTIMATORS`; min-entropy in bits per sample.
    h_original: initial entropy estimate H_original = min over the applicable estimators, bits/sample.
    limiting: name(s) of the estimator(s) that set h_original.
    claimed_min_entropy: H_submitter, bits/sample, if given; h_initial = min(claim, h_original)
        (§3.1.3; for 1-bit samples there is no separate H_bitstring).
    ais31: AIS 31 procedure A/B results (None when not requested).
    warnings: conditions a reviewer must know about (short stream, constant stream, ...).
    source: where the bits came from (file or job id).
    """

    n_samples: int
    estimates: dict[str, Estimate]
    h_original: float
    limiting: tuple[str, ...]
    ais31: AIS31Result | None = None
    claimed_min_entropy: float | None = None
    warnings: tuple[str, ...] = ()
    source: str = ""
    reference: dict = field(default_factory=lambda: {
        "sp800_90b": "NIST SP 800-90B (2018) section 6.3; numbers match ea_non_iid 1.1.7 "
                     "(usnistgov/SP800-90B_EntropyAssessment 68ed165), 1 bit per sample",
        "ais31": "Killmann & Schindler, A proposal for: Functionality classes for random number "
                 "generators, v2.0 (2011), procedures A and B"})

    @property
    def h_initial(self) -> float:
        """min(H_submitter, H_original) when a claim was given, else H_original (bits/sample)."""
        if self.claimed_min_entropy is None:
            return self.h_original
        return min(self.claimed_min_entropy, self.h_original)

    def to_dict(self) -> dict:
        d: dict = {name: self.estimates[name].min_entropy for name in ESTIMATORS}
        d["h_original"] = self.h_original
        d["h_original_limited_by"] = list(self.limiting)
        # SP 800-90B §3.1.3 H_bitstring (and §3.1.5.2 h' for conditioned data) run the same ten
        # estimators on the bit string; for 1-bit samples that is this very stream, so the value is
        # identical (ea_non_iid -c prints the same numbers labelled "Bitstring").
        d["h_bitstring"] = self.h_original
        if self.claimed_min_entropy is not None:
            d["claimed_min_entropy"] = self.claimed_min_entropy
            d["h_initial"] = self.h_initial
            d["claim_supported"] = self.h_original >= self.claimed_min_entropy
        d["n_samples"] = self.n_samples
        d["units"] = "min-entropy in bits per sample (1 sample = 1 bit)"
        d["estimators"] = {name: self.estimates[name].to_dict() for name in ESTIMATORS}
        if self.ais31 is not None:
            d["ais31"] = self.ais31.to_dict()
        d["warnings"] = list(self.warnings)
        d["source"] = self.source
        d["reference"] = dict(self.reference)
        return d

    def summary(self) -> str:
        lines = [f"SP 800-90B non-IID estimates ({self.n_samples:,} samples"
                 + (f", {self.source}" if self.source else "") + "), bits per sample:"]
        for name in ESTIMATORS:
            e = self.estimates[name]
            h = "n/a (" + e.details.get("reason", "not applicable") + ")" if e.min_entropy is None \
                else f"{e.min_entropy:.6f}"
            mark = "  <- limits H_original" if name in self.limiting else ""
            lines.append(f"  {name:12s} §{e.section:7s} {h}{mark}")
        lines.append(f"  H_original = {self.h_original:.6f}")
        if self.claimed_min_entropy is not None:
            verdict = "supported" if self.h_original >= self.claimed_min_entropy else "NOT supported"
            lines.append(f"  claimed H_submitter = {self.claimed_min_entropy:.6f}: {verdict}; "
                         f"H_I = {self.h_initial:.6f}")
        if self.ais31 is not None:
            lines.append(self.ais31.summary())
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def assess(bits, *, run_ais31: bool = True, claimed_min_entropy: float | None = None,
           source: str = "bits") -> EntropyAssessment:
    """Assess a binary stream with all ten SP 800-90B §6.3 estimators (and AIS 31 unless disabled).

    bits: 1-D array-like of 0/1 (uint8, bool, int or exactly-0/1 floats), or a
        :class:`noisecell.io.BitStream` (its ``source`` names the result); at least
        :data:`MIN_SAMPLES` samples (1,000,000 recommended by SP 800-90B).
    claimed_min_entropy: optional H_submitter, bits per sample, checked against H_original.
    source: name used in error messages and in the result (file path, job id).
    Raises InputError for non-binary values or too short streams.
    """
    if hasattr(bits, "bits") and not isinstance(bits, np.ndarray):     # a BitStream
        source = getattr(bits, "source", "") or source
        bits = bits.bits
    s = as_bits(bits, source=source, min_samples=MIN_SAMPLES)
    if claimed_min_entropy is not None and not (0.0 <= claimed_min_entropy <= 1.0):
        from ..errors import InputError
        raise InputError(f"{source}: claimed min-entropy {claimed_min_entropy} is outside [0, 1] bits "
                         "per sample for 1-bit samples; give a value in that range")
    warnings = []
    if s.size < RECOMMENDED_SAMPLES:
        warnings.append(f"{s.size:,} samples: SP 800-90B section 3.1.1 asks for at least "
                        f"{RECOMMENDED_SAMPLES:,} for a validation-grade estimate")
    ones = int(np.count_nonzero(s))
    if ones in (0, s.size):
        warnings.append("constant stream (one value only): no entropy awarded")
    estimates = all_estimates(s)
    applicable = {k: e.min_entropy for k, e in estimates.items() if e.min_entropy is not None}
    h = min(applicable.values())
    limiting = tuple(k for k in ESTIMATORS if applicable.get(k) == h)
    for k, e in estimates.items():
        if e.min_entropy is None:
            warnings.append(f"{k} not applicable: {e.details.get('reason')}")
    result_ais = _ais31.ais31(s) if run_ais31 else None
    if result_ais is not None and result_ais.not_run:
        warnings.append("AIS 31 tests not run for lack of data: " + ", ".join(result_ais.not_run)
                        + " (procedure B needs about 7.2 million bits, T0 3,145,728)")
    return EntropyAssessment(n_samples=int(s.size), estimates=estimates, h_original=float(h),
                             limiting=limiting, ais31=result_ais,
                             claimed_min_entropy=claimed_min_entropy, warnings=tuple(warnings),
                             source=source)
