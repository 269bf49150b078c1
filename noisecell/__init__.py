"""noisecell: characterise transistor-noise random-bit cells (p-bits).

Data flows one way through the package:
netlist template + parameters (``cells``, ``netlist``) → simulation job (``simulate``) → waveform
(``waveform``) → bits (``digitize``, ``io``) → estimates (``analysis``, ``entropy``) → fits across
conditions (``analysis.sigmoid``) → cell model (``model``) → samplers and reports (``report``).
"""
__version__ = "0.1.0"
