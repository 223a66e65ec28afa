"""Results must not depend on the launcher: the chaotic computations (NUTS, the domain classifier) run with a fixed
thread count, so the same stage gives the same numbers under OMP_NUM_THREADS=1 and 2 (a direct run uses every core,
snakemake sets the rule's threads, SLURM the job's CPUs). Before the fix, NUTS's adapted step size differed
(0.088 with one thread, 0.153 with two, on the same inputs): the whole posterior stage now runs on one thread."""
from __future__ import annotations

import json

import pytest
import torch

from pae import threads
from tests.helpers import run_pae, write_run_files


def test_fixed_restores_the_thread_count():
    before = torch.get_num_threads()
    with threads.fixed(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def _posterior(files: dict, omp: int) -> dict:
    spec = {"n_images": 4, "corruptions": ["left_half"], "box_fraction": 0.5, "sparse_ratio": 0.5,
            "noise_sigma": 0.1, "restarts": 2, "map_steps": 15, "map_lr": 0.05, "laplace": "gauss_newton",
            "posterior_samples": 20, "mcmc": True, "mcmc_images": 3, "mcmc_warmup": 30, "mcmc_max_tree_depth": 5,
            "figure_images": 2, "seed": 0}
    out = files["out"].with_name(f"posterior{omp}.json")
    run_pae("posterior", "--spec", json.dumps(spec), "--model", files["model_path"], "--flow", files["flow_path"],
            "--data", files["data_path"], "--latents", files["latents_path"], "--out", out,
            "--panels-out", files["panels_out"].with_name(f"panels{omp}.h5"), "--device", "cpu",
            env={"OMP_NUM_THREADS": str(omp)})
    result = json.loads(out.read_text())
    for c in result["corruptions"].values():
        for m in c["methods"].values():
            m.pop("seconds", None)
    result.pop("seconds", None)
    return result


@pytest.mark.integration
def test_posterior_stage_gives_the_same_numbers_with_one_and_two_threads(tmp_path, synthetic_h5):
    files = write_run_files(tmp_path, synthetic_h5, "ae")
    one, two = _posterior(files, 1), _posterior(files, 2)
    mcmc = one["corruptions"]["left_half"]["methods"]["mcmc"]
    assert mcmc == two["corruptions"]["left_half"]["methods"]["mcmc"]
    assert one == two
