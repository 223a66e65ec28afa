"""The workflow's files and datasets (pae.config): the path table every rule and the report manifest use, the names
of prepared data files (a hash of a non-default dataset entry) and the OoD dataset policy."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

import pae.config
from pae.config import PATHS, resolve
from pae.io import PaeError
from tests.helpers import REPO

TINY = REPO / "tests" / "workflow" / "config.yaml"


def config(**over):
    return resolve({"experiment": "x", "datasets": {"fashion_mnist": {}}, "latent_sizes": [4], **over})


def test_each_path_is_written_once():
    patterns = list(PATHS.values())
    assert len(set(patterns)) == len(patterns)
    assert sum("model/model.pt" in p for p in patterns) == 1
    # the rules and the Snakefile name files through the table only
    for smk in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        code = "\n".join(line.split("#")[0] for line in smk.read_text().splitlines())
        for pattern in patterns:
            tail = pattern.rsplit("}/", 1)[-1]  # e.g. model/model.pt, classifiers/{data_key}.pt, metrics/fid.json
            assert "." not in tail or tail not in code, (smk, tail)


def test_workflow_paths_fill_the_roots_and_leave_the_wildcards():
    paths = pae.config.workflow_paths(config(results_dir="out", resources_dir="res"))
    assert paths["model"] == "out/x/{run}/model/model.pt"
    assert paths["data"] == "res/data/{data_key}.h5"
    assert paths["classifier"] == "out/x/classifiers/{data_key}.pt"
    assert paths["figures"] == "out/x/figures" and paths["report"] == "out/x/report.md"
    assert pae.config.log_path(config(), "prepare") == "logs/prepare/{data_key}.log"
    assert pae.config.log_path(config(), "train") == "logs/x/{run}/train.log"
    assert pae.config.benchmark_path(config(), "train_classifier") == "benchmarks/x/classifiers/{data_key}.tsv"
    assert pae.config.benchmark_path(config(), "report") == "benchmarks/x/report.tsv"


def test_run_paths_of_the_tiny_workflow():
    cfg = pae.config.load(TINY)
    runs = pae.config.runs(cfg)
    run = "fashion_mnist-ae-z4-s0"
    paths = pae.config.run_paths(cfg, runs[run])
    key = pae.config.data_key(cfg, "fashion_mnist")
    assert set(paths) == {*pae.config.RUN_FILES, "benchmarks"}
    assert paths["model"] == f"results/tiny/{run}/model/model.pt"
    assert paths["data"] == f"resources/data/{key}.h5"
    assert paths["classifier"] == f"results/tiny/classifiers/{key}.pt"
    assert paths["ood_scores"] == f"results/tiny/{run}/metrics/ood_scores.csv"
    assert paths["checkpoint"] == f"results/tiny/{run}/checkpoint/train.pt"
    assert paths["benchmarks"] == {"prepare": f"benchmarks/prepare/{key}.tsv",
                                   **{s: f"benchmarks/tiny/{run}/{s}.tsv" for s in pae.config.RUN_STAGES}}
    assert not any("{" in p for p in [*paths.values(), *paths["benchmarks"].values()] if isinstance(p, str))


def test_a_grid_block_that_skips_the_ood_stage_has_no_ood_files():
    cfg = config(latent_sizes=[4, 8], grid=[{"datasets": ["fashion_mnist"], "latent_sizes": [4], "skip": ["ood"]},
                                           {"datasets": ["fashion_mnist"], "latent_sizes": [8]}])
    runs = pae.config.runs(cfg)
    skipped = pae.config.run_paths(cfg, runs["fashion_mnist-ae-z4-s0"])
    kept = pae.config.run_paths(cfg, runs["fashion_mnist-ae-z8-s0"])
    assert set(kept) - set(skipped) == {"ood", "ood_scores"}
    assert set(kept["benchmarks"]) - set(skipped["benchmarks"]) == {"ood"}
    assert runs["fashion_mnist-ae-z4-s0"]["skip"] == ["ood"] and runs["fashion_mnist-ae-z8-s0"]["skip"] == []
    with pytest.raises(PaeError, match=r"grid\.0\.skip\.0: 'train' is not one of \['ood'\]"):
        config(grid=[{"datasets": ["fashion_mnist"], "skip": ["train"]}])


def test_data_key_is_the_name_for_the_default_entry_else_a_hash_of_the_entry():
    assert pae.config.data_key(config(), "fashion_mnist") == "fashion_mnist"
    small = config(datasets={"fashion_mnist": {"limit_train": 2000}})
    key = pae.config.data_key(small, "fashion_mnist")
    assert re.fullmatch(r"fashion_mnist-[0-9a-f]{8}", key)
    assert key == pae.config.data_key(config(datasets={"fashion_mnist": {"limit_train": 2000}}), "fashion_mnist")
    assert key != pae.config.data_key(config(datasets={"fashion_mnist": {"limit_train": 3000}}), "fashion_mnist")
    # a key that the dataset does not use (image_size: CelebA and image folders only) never renames its file
    assert pae.config.data_spec("mnist", {"image_size": 64, "val_size": 1}) == {"val_size": 1}
    # the keys the tiny workflow has always used (renaming them would redo every prepared file)
    tiny = pae.config.load(TINY)
    assert pae.config.data_keys(tiny) == {"fashion_mnist-61942595": "fashion_mnist", "mnist-eade0433": "mnist"}


def test_ood_only_datasets_get_the_default_entry_with_a_small_validation_part():
    cfg = config()
    spec = pae.config.dataset_spec(cfg, "mnist")
    assert spec == pae.config.data_spec("mnist", {**pae.config.default_data_entry(), **pae.config.OOD_ONLY_SPEC})
    assert spec["val_size"] == pae.config.OOD_ONLY_SPEC["val_size"]
    assert pae.config.data_key(cfg, "mnist").startswith("mnist-")
    assert pae.config.default_data_entry() == resolve({"datasets": {"_": {}}}, validate=False)["datasets"]["_"]


def test_ood_datasets_policy():
    auto = config()
    assert auto["eval"]["ood"]["datasets"] == "auto"
    assert pae.config.ood_datasets(auto, "fashion_mnist") == ["mnist"]
    assert pae.config.ood_datasets(auto, "mnist") == ["fashion_mnist"]
    assert pae.config.ood_datasets(auto, "celeba") == []
    listed = config(eval={"ood": {"datasets": ["mnist", "fashion_mnist"]}})
    assert pae.config.ood_datasets(listed, "fashion_mnist") == ["mnist"]  # never the dataset itself
    assert pae.config.ood_datasets(config(eval={"ood": {"datasets": []}}), "fashion_mnist") == []
    assert set(pae.config.data_keys(auto)) == {"fashion_mnist", pae.config.data_key(auto, "mnist")}
    assert set(pae.config.data_keys(config(eval={"ood": {"datasets": []}}))) == {"fashion_mnist"}


def test_job_resources_come_from_the_launchers_job_without_torch():
    code = ("import dataclasses, sys, pae.launch; "
            "print(' '.join(f.name for f in dataclasses.fields(pae.launch.Job))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "False"
    import pae.launch
    assert out[0].split() == [f.name for f in dataclasses.fields(pae.launch.Job)]
    assert {"runtime", "mem_mb", "gpus", "slurm_partition"} <= set(out[0].split())


def test_the_report_stage_builds_its_manifest_from_the_config():
    """The report stage gets the resolved config on its command line and builds the manifest (every run with its
    files) itself: the paper grid's manifest is longer than Linux lets one argument be (MAX_ARG_STRLEN, 128 KiB;
    configs/reproduce_vad.yaml's 44 runs already were), its config a few kB whatever the grid's size."""
    cfg = pae.config.load(REPO / "configs" / "paper.yaml")
    manifest = pae.config.report_manifest(cfg, ["configs/paper.yaml"])
    runs = pae.config.runs(cfg)
    assert [r["run"] for r in manifest["runs"]] == list(runs)
    assert all(r["files"] == pae.config.run_paths(cfg, runs[r["run"]]) for r in manifest["runs"])
    assert manifest["experiment"] == cfg["experiment"] and manifest["configfiles"] == ["configs/paper.yaml"]
    assert len(json.dumps(manifest)) > 128 * 1024 > 10 * len(json.dumps(cfg))


def test_the_fid_reference_is_one_file_per_dataset_and_eval_fid_settings_but_the_temperatures():
    """Runs share their dataset's FID reference where their eval.fid settings differ in the temperatures alone;
    settings that differ in any other key, or another prepared dataset, get a file of their own."""
    cfg = config(grid=[{"datasets": ["fashion_mnist"], "latent_sizes": [4, 8]},
                       {"datasets": ["fashion_mnist"], "name": "t", "eval": {"fid": {"temperatures": [0.9]}}},
                       {"datasets": ["fashion_mnist"], "name": "n", "eval": {"fid": {"n_samples": 500}}}])
    runs = pae.config.runs(cfg)
    ref = {run: pae.config.run_paths(cfg, spec)["fid_reference"] for run, spec in runs.items()}
    key = pae.config.fid_reference_key(cfg["eval"]["fid"])
    assert ref["fashion_mnist-ae-z4-s0"] == f"results/x/fid_reference/fashion_mnist/{key}.h5"
    assert ref["fashion_mnist-ae-z4-s0"] == ref["fashion_mnist-ae-z8-s0"] == ref["fashion_mnist-ae-z4-s0-t"]
    assert ref["fashion_mnist-ae-z4-s0-n"] != ref["fashion_mnist-ae-z4-s0"]
    spec = cfg["eval"]["fid"]
    other = {"n_samples": 500, "fid_samples": 100, "scalings": ["uint8", "minmax"], "preprocessing": "tensorflow",
             "bootstrap": 0, "inception": "never", "weights": "w.pth", "batch_size": 100, "seed": 1}
    assert set(other) == set(spec) - set(pae.config.FID_RUN_ONLY_KEYS)  # every key the reference depends on
    keys = {pae.config.fid_reference_key({**spec, k: v}) for k, v in other.items()}
    assert len(keys) == len(other) and key not in keys
    assert pae.config.fid_reference_key({**spec, "temperatures": [0.5]}) == key
    small = config(datasets={"fashion_mnist": {"limit_train": 2000}})
    small_ref = pae.config.run_paths(small, pae.config.runs(small)["fashion_mnist-ae-z4-s0"])["fid_reference"]
    assert small_ref == f"results/x/fid_reference/{pae.config.data_key(small, 'fashion_mnist')}/{key}.h5"
