"""Normalizing flows on auto-encoder latents (the second stage of the PAE), built from nflows transforms."""
from pae.flows.latent_flow import FlowSpec, LatentFlow, build_flow, fit_flow, load_flow, save_flow

__all__ = ["FlowSpec", "LatentFlow", "build_flow", "fit_flow", "load_flow", "save_flow"]
