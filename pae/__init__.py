"""pae: probabilistic auto-encoders (Böhm & Seljak, TMLR 2022) and the generative auto-encoders they are compared with,
as a reproducible pipeline. `python -m pae STAGE ...` is the entry point every workflow rule calls."""

__version__ = "0.1.0"
