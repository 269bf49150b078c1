"""The characterisation report: the ``characterize`` flow, its figures and the self-contained HTML."""
