"""Calibrated behavioural cell model: versioned JSON (schemas/cell-model-v2.json; v1 files still read), a fast exact
sampler of the two-state Markov chain, and (optional) thrml integration (:mod:`noisecell.model.thrml_cells`).
"""
from .cellmodel import CellInstances, CellModel, Condition, OutOfRangeError, schema, validate_document

__all__ = ["CellModel", "CellInstances", "Condition", "OutOfRangeError", "schema", "validate_document"]
