"""The fid stage (per run): the domain Fréchet distance (in the features of the dataset's domain classifier, from the
train_classifier stage) and, when Inception is available, the FID of sampled and reconstructed images ->
metrics/fid.json.

fid.json compares image sets with the real test images (at most eval.fid.n_samples of them, drawn with the seed):
  prior            z ~ N(0, I) through the decoder (what the auto-encoder gives without a density on its latents)
  pae_T{T}         the PAE: u ~ N(0, T^2 I) through the inverse flow, then the decoder, for each T of
                   eval.fid.temperatures (the distance-vs-T curve); every temperature and the prior share the same
                   base draws u (common random numbers, so differences between them are not sampling noise)
  reconstructions  the decoded test latents of latents.h5 of the same real test images
  train_vs_test    train-split images (at most n_samples, drawn with seed + 1): the floor a perfect sampler reaches
Every set is made of uint8 images: decoder means on the [-0.5, 0.5] scale are clamped and rounded to uint8 (`to_uint8`),
the form the real images are stored in, so both sets pass through the same quantisation and the same feature path.

Layout of fid.json:
  protocol         n_real, n_generated {set: n}, n_fid {real, generated}, seed, reference, sets {set: description},
                   image_conversion {domain_fd, fid, fid_minmax}, pixel_normalisation, bootstrap {n_boot, level,
                   method}, kid, precision_recall (what they are), classifier {file, test_accuracy, ...},
                   inception {mode, weights: {path, sha256, obtained, source, source_sha256, max_abs_diff} or null},
                   nonfinite_latents {set: count}
  domain_fd        {set: {value, low, high, bootstrap_bias, n_boot, level, n_a, n_b}}: the Fréchet distance in the
                   domain classifier's features (never an FID: not comparable with published figures)
  fid              the same for pytorch-fid's Inception pool3 features on the first eval.fid.fid_samples images of
                   each set (n_a, n_b say how many), or null when Inception was not run
  fid_minmax       the same with each image min-max stretched first (eval.fid.scalings has minmax), else null
  kid              {fid | fid_minmax: {set: {value, std, subsets, subset_size, n_a, n_b}}}: the Kernel Inception
                   Distance in the same features as that FID (unbiased at small n), or null without Inception
  precision_recall {fid | fid_minmax: {set: {precision, recall, f_score, k, n_a, n_b}}}: precision (fidelity) and
                   recall (coverage) of the set against the real images in those features, or null
  fid_unavailable  why the FID is null (the missing-weights message, or the config's inception: never), else null
  temperatures     the PAE temperatures, in config order

Inception on a CPU takes about 30 minutes per 10,000 images on one core, so the paper's protocol (nine image sets,
two scalings) runs for hours. The real test images' features and the train-vs-test floor are the dataset's, computed
once by the fid_reference stage and read from --reference by every run of the dataset (checked to be made from the
run's dataset, domain classifier, Inception weights and eval.fid settings); without --reference they are computed here
and not kept. The min-max pass of a set sends through Inception only the images the stretch changes (8% of
Fashion-MNIST's real images) and reuses the plain pass's features for the rest. With --partial (the workflow passes
the run's checkpoint/fid folder) each finished piece is kept there, and a rerun of the stage after a stop computes
only what is left (pae/eval/sample_quality.py); the folder is removed once fid.json is written.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from pae.config import fid_reference_spec
from pae.data.latents import split_with_latents
from pae.eval import inception
from pae.eval.classifier import load_classifier
from pae.eval.sample_quality import (Pieces, check_classifier, classifier_info, fingerprint, load_inception,
                                     make_reference, read_reference, run_metrics)
from pae.io import write_json
from pae.stages.args import add_run_inputs
from pae.stages.common import load_run

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.fid config section", latents=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--reference", type=Path, default=None,
                   help="the dataset's FID reference (the fid_reference stage's file); without it, it is computed "
                        "here and not kept")
    p.add_argument("--partial", type=Path, default=None,
                   help="folder keeping the finished pieces, so that a rerun after a stop resumes (module docstring)")


def run(a: argparse.Namespace) -> None:
    fid(a.spec, a.model, a.flow, a.data, a.latents, a.classifier, a.out, a.device, reference_path=a.reference,
        partial=a.partial)


def fid(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path, classifier_path: Path,
        out: Path, device: str, reference_path: Path | None = None, partial: Path | None = None) -> None:
    """Domain Fréchet distance (and FID when Inception is available) of every set against the real test images ->
    `out` (fid.json, layout in the module docstring). spec = config eval.fid; `reference_path`: the dataset's
    reference (None: computed here); `partial`: the folder of finished pieces (module docstring)."""
    with torch.random.fork_rng(devices=[]):  # building the networks draws initial weights: leave the global RNG
        r = load_run(model_path, flow_path, data_path, device)
        classifier, cmeta = load_classifier(classifier_path, r.device)
        network = load_inception(spec, r.device)
    check_classifier(r.data, classifier, cmeta, classifier_path)
    _, test_z = split_with_latents(latents_path, r.data, "test")
    classifier_sha256 = inception.sha256(classifier_path)
    inputs = [model_path, flow_path, data_path, latents_path, classifier_path, *filter(None, [reference_path])]
    pieces = Pieces(partial, "" if partial is None else fingerprint(spec, inputs, network.weights))
    if reference_path is None:
        log.info("no --reference: the real test images' features and the floor are computed here")
        folder = None if partial is None else partial / "reference"  # emptied with the run's pieces
        ref_pieces = Pieces(folder, "" if folder is None else fingerprint(
            fid_reference_spec(spec), [data_path, classifier_path], network.weights))
        reference = make_reference(spec, r.data, classifier, classifier_sha256, network, r.device, ref_pieces)
    else:
        reference = read_reference(reference_path)
        reference.check(reference_path, spec, r.data.attrs["sha256"], classifier_sha256, network.weights)
        log.info("FID reference: %s", reference_path)
    result = run_metrics(spec, r.model, r.flow, r.spec.latent_dim, test_z, classifier,
                         classifier_info(classifier_path, cmeta), network, reference, r.device, pieces)
    write_json(out, result)
    pieces.remove()
    log.info("wrote %s (%d real test images; %s; domain classifier test accuracy %.4f)", out, reference.n_real,
             "FID and domain FD" if network.network is not None else "domain FD only, no FID", cmeta["test_accuracy"])
