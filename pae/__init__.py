"""pae: probabilistic auto-encoders (Böhm & Seljak, TMLR 2022) and the generative auto-encoders they are compared with,
as a reproducible pipeline. `python -m pae STAGE ...` is the entry point every workflow rule calls; `pae.load_run(run_dir)`
loads a trained run in Python (pae.api)."""

__version__ = "0.1.0"
__all__ = ["load_run"]


def __getattr__(name: str):
    """pae.load_run (and pae.TrainedRun) from pae.api, imported on first use: `import pae` alone loads no torch, which
    the launchers' own process relies on."""
    if name in ("load_run", "TrainedRun"):
        from pae import api

        return getattr(api, name)
    raise AttributeError(f"module 'pae' has no attribute {name!r}")
