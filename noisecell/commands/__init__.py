"""One module per CLI command; see :mod:`noisecell.cli`."""
