"""``noisecell characterize`` as procedures, each a module with a result object (numbers + ``summary()``).

The flow (:func:`noisecell.report.characterize.characterize`) runs them in this order:

0. :mod:`.spec` — read and validate the characterisation spec (:class:`~.spec.CharSpec`);
1. :mod:`.pilot` — locate the sigmoid with a short coarse sweep (:class:`~.pilot.PilotResult`);
   :mod:`.design` — with a ``[design]`` table, the sequential design at the nominal condition
   (:class:`noisecell.sequential.SequentialResult`);
2. :mod:`.parts` — run every part as a resumable sweep, one per-point table (:class:`~.parts.PartsResult`;
   rows read through :class:`~noisecell.analysis.StreamEstimates` by :mod:`.points`);
3. :mod:`.fits` — fit the behavioural model, each condition once (:class:`~.fits.ModelResult`);
   :mod:`.streams` — entropy figures and example streams from the stored records;
4. :mod:`.datasheet` — the headline figures with CIs (:class:`~.datasheet.Datasheet`);
5. :mod:`.validation` — the model against the held-out simulations (:class:`~.validation.ValidationResult`);
6. :mod:`.measured` — measured captures fitted and compared (:class:`~.measured.MeasuredResult`).

A procedure reads the results of earlier ones; the sweeps write their stores, :func:`.fits.fit_model`
writes model.json (and :mod:`.measured` model_measured.json), and :mod:`noisecell.report.html` renders
the report from the results.
"""
from __future__ import annotations

import sys


def log(msg: str) -> None:
    """Progress line on stderr (the report and JSON outputs go elsewhere)."""
    print(f"characterize: {msg}", file=sys.stderr, flush=True)
