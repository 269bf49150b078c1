"""Statistics of a noisy bit cell with honest uncertainty.

Per stream: :func:`analyze_stream` (P(1), autocorrelation, τ, rates, dwell GoF, PSD, energy, entropy
rates and SP 800-90B health-test cutoffs). Across conditions: :mod:`.sigmoid`.
"""
from .stream import StreamEstimates, analyze_stream, analyze_waveform

__all__ = ["StreamEstimates", "analyze_stream", "analyze_waveform"]
