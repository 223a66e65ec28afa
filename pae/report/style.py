"""One style for every figure of a report: print sizes, fonts, one colour per model and one line style per method,
human names for the config's keys, and the atomic save.

Figures are drawn at the size they are printed (a journal's column, 3.4 in, or its full width, 7.0 in), so that a
font's size here is its size on paper; no text is smaller than MIN_FONT_PT."""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pae.config import RUN_ID  # noqa: E402
from pae.io import atomic_path  # noqa: E402

COLUMN_IN = 3.4  # one column of a two-column journal page, inches
PAGE_IN = 7.0  # the full text width
PAGE_HEIGHT_IN = 9.0  # the full text height: no figure is taller
MIN_FONT_PT = 7.0
DPI = 200  # at the printed size: sharp in print, small enough to commit

RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
      "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 9, "axes.spines.top": False,
      "axes.spines.right": False, "legend.frameon": False, "lines.linewidth": 1.2, "lines.markersize": 3.5,
      "savefig.dpi": DPI}

# Colour-blind-safe colours (Okabe & Ito 2008), in the order models are met.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
BASE_MODELS = ("ae", "vae", "beta_vae", "vad")  # each keeps its colour in every report
MODEL_LABELS = {"ae": "AE", "vae": "VAE", "beta_vae": "β-VAE", "vad": "VAD"}

# A method (how an image is generated or inferred) keeps its line style and marker in every figure.
METHODS = {
    # samplers (fid.json, samplers.csv)
    "flow": {"label": "flow samples", "ls": "-", "marker": "o"},
    "prior": {"label": "N(0, I) samples", "ls": "--", "marker": "s"},
    "recon": {"label": "reconstructions", "ls": ":", "marker": "^"},
    "floor": {"label": "training images (floor)", "ls": "-.", "marker": "D"},
    # imputation (impute.csv)
    "encoder": {"label": "the model's own inference", "ls": "-", "marker": "o"},
    "vad_infer": {"label": "the model's own inference", "ls": "-", "marker": "o"},
    "pae_map": {"label": "PAE latent MAP", "ls": "--", "marker": "s"},
}

SCORE_LABELS = {"flow_logp": "−log p(z) (flow)", "recon_mse": "reconstruction MSE",
                "pae_density": "−log p(z) + ½ log det JᵀJ", "pae_marginal": "−log p(x) (Laplace)",
                "elbo": "−ELBO"}
DATASET_LABELS = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "celeba": "CelebA",
                  "image_folder": "image folder", "hflip": "flipped left-right", "vflip": "flipped upside down"}


def model_colours(models) -> dict[str, str]:
    """One colour per model of a report: the base models their fixed ones, other names (a named grid block's
    "vae-bernoulli") the unused colours in sorted order, so every figure of the report agrees."""
    models = list(dict.fromkeys(models))
    out = {m: PALETTE[BASE_MODELS.index(m)] for m in models if m in BASE_MODELS}
    free = [c for c in PALETTE if c not in out.values()]
    for i, m in enumerate(sorted(m for m in models if m not in out)):
        out[m] = free[i % len(free)]
    return out


def model_label(model: str) -> str:
    """"vae" -> "VAE"; a named block's "vae-bernoulli" -> "VAE (bernoulli)"."""
    base, _, variant = model.partition("-")
    name = MODEL_LABELS.get(base, base)
    return f"{name} ({variant.replace('_', ' ')})" if variant else name


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name.replace("_", " "))


def run_label(run: str) -> str:
    """A run id (pae.config.RUN_ID) in words for a figure's title: "fashion_mnist-vae-z16-s0" -> "VAE on
    Fashion-MNIST, latent 16, seed 0"; what follows the seed in the id (a named grid block) follows the model in
    brackets, as in the legends (model_label); an id of another form is given as it is."""
    m = RUN_ID.fullmatch(run)
    if m is None:
        return run
    model = model_label(m["model"] + (f"-{m['suffix']}" if m["suffix"] else ""))
    return f"{model} on {dataset_label(m['dataset'])}, latent {m['z']}, seed {m['seed']}"


def method_style(method: str) -> dict:
    """{ls, marker} of a method (unknown ones solid with a dot)."""
    m = METHODS.get(method, {"ls": "-", "marker": "."})
    return {"ls": m["ls"], "marker": m["marker"]}


def is_pae(model: str) -> bool:
    """Whether the model's flow samples are the PAE's: an AE's (a named block of one too); a VAE's through a flow
    are the two-stage sampler, not the PAE."""
    return model.partition("-")[0] == "ae"


def method_label(method: str, model: str | None = None) -> str:
    """A method in words; an AE's flow samples are the PAE's ("flow samples (PAE)"), a VAE's are not."""
    label = METHODS.get(method, {}).get("label", method.replace("_", " "))
    return f"{label} (PAE)" if method == "flow" and model is not None and is_pae(model) else label


def styled(draw):
    """Draw under RC (a context, so a report leaves matplotlib's global settings alone)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return draw(*args, **kwargs)
    return wrapper


def save(fig, path: Path) -> None:
    """The figure at its own size (the printed one) as a PNG, written atomically, then closed."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
