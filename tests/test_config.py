"""Config validation: defaults filled from the schema, bad keys and values named, every shipped config valid."""
from __future__ import annotations

import pytest
import yaml

from pae.config import load, resolve, runs
from pae.io import PaeError
from tests.helpers import REPO, run_pae


def test_defaults_are_filled_everywhere():
    cfg = resolve({"datasets": {"mnist": {"limit_train": 10}}})
    assert cfg["datasets"]["mnist"] == {"source": "auto", "val_size": 5000, "split_seed": 0, "limit_train": 10,
                                        "limit_test": None, "image_size": 64}
    assert cfg["train"]["epochs"] == 15 and cfg["flow"]["kind"] == "nsf" and cfg["eval"]["n_samples"] == 64
    assert cfg["latent_sizes"] == [8, 32] and cfg["device"] == "auto"


def test_resolve_does_not_modify_its_input_or_share_defaults():
    given = {"train": {"epochs": 3}}
    a, b = resolve(given), resolve({})
    assert given == {"train": {"epochs": 3}}
    a["flow"]["layers"] = 99
    assert b["flow"]["layers"] != 99 and resolve({})["flow"]["layers"] != 99


@pytest.mark.parametrize("config, where, what", [
    ({"trian": {}}, "(top level)", "'trian' was unexpected"),
    ({"train": {"epochs": 0}}, "train.epochs", "less than the minimum"),
    ({"train": {"lr": "fast"}}, "train.lr", "not of type 'number'"),
    ({"datasets": {"cifar": {}}}, "datasets", "'cifar' is not one of"),
    ({"datasets": {"mnist": {"vals": 3}}}, "datasets.mnist", "'vals' was unexpected"),
    ({"latent_sizes": [8, 8]}, "latent_sizes", "non-unique"),
    ({"device": "tpu"}, "device", "'tpu' is not one of"),
])
def test_bad_config_names_the_key(config, where, what):
    with pytest.raises(PaeError) as e:
        resolve(config)
    assert f"{where}: " in str(e.value) and what in str(e.value)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")) + [REPO / "tests/workflow/config.yaml"],
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load(path)
    assert cfg["experiment"]


def test_check_config_command(tmp_path):
    out = run_pae("check-config", REPO / "configs" / "demo.yaml").stdout
    assert yaml.safe_load(out)["flow"]["tail_bound"] == 5.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: -1}\n")
    proc = run_pae("check-config", bad, check=False)
    assert proc.returncode == 1 and "train.epochs" in proc.stderr and str(bad) in proc.stderr
    missing = run_pae("check-config", tmp_path / "nope.yaml", check=False)
    assert missing.returncode == 1 and "config file not found" in missing.stderr


def test_strings_from_the_command_line_are_read_as_their_type():
    """`snakemake --config flow={layers: 3}` hands over "3"; it is read as 3, and a non-number still fails."""
    cfg = resolve({"flow": {"layers": "3", "lr": "0.01"}, "train": {"channels_last": "true"},
                   "datasets": {"mnist": {"limit_train": "null"}}})
    assert (cfg["flow"]["layers"], cfg["flow"]["lr"], cfg["train"]["channels_last"]) == (3, 0.01, True)
    assert cfg["datasets"]["mnist"]["limit_train"] is None
    with pytest.raises(PaeError, match="flow.layers: 'three' is not of type 'integer'"):
        resolve({"flow": {"layers": "three"}})
    with pytest.raises(PaeError, match="experiment"):
        resolve({"experiment": 5})  # not a string, and not coerced the other way


def test_schema_choices_match_the_registries():
    """Every name the schema accepts is registered, and every registered name can be chosen."""
    from pae.config import _schema
    from pae.flows.latent_flow import FLOWS
    from pae.models import ARCHITECTURES, MODELS
    from pae.models.likelihoods import LIKELIHOODS
    from pae.models.posteriors import POSTERIORS
    props = _schema()["properties"]
    train = props["train"]["properties"]
    assert set(props["models"]["items"]["enum"]) == set(MODELS)
    assert set(train["arch"]["enum"]) == set(ARCHITECTURES)
    assert set(train["likelihood"]["properties"]["kind"]["enum"]) == set(LIKELIHOODS)
    assert set(train["posterior"]["enum"]) == set(POSTERIORS)
    assert set(props["flow"]["properties"]["kind"]["enum"]) == set(FLOWS)


def test_runs_without_grid_are_the_cross_product():
    cfg = resolve({"datasets": {"fashion_mnist": {}, "mnist": {}}, "models": ["ae", "vae"], "latent_sizes": [4],
                   "seeds": [0, 1], "train": {"epochs": 3}})
    got = runs(cfg)
    assert len(got) == 8 and "mnist-vae-z4-s1" in got
    assert all(r["train"] == cfg["train"] and r["flow"] == cfg["flow"] for r in got.values())
    assert not any(r["matched_imputation"] for r in got.values())


def test_grid_blocks_override_sizes_models_and_training():
    cfg = resolve({"datasets": {"fashion_mnist": {}, "mnist": {}}, "models": ["ae", "vae"], "seeds": [0],
                   "train": {"epochs": 7, "likelihood": {"kind": "gaussian_learned"}},
                   "grid": [{"datasets": ["fashion_mnist"], "latent_sizes": [4, 128]},
                            {"datasets": ["mnist"], "latent_sizes": [10], "models": ["vad"], "seeds": [3],
                             "train": {"epochs": 2, "likelihood": {"sigma": 0.3}}, "flow": {"kind": "maf"}}]})
    got = runs(cfg)
    assert sorted(got) == ["fashion_mnist-ae-z128-s0", "fashion_mnist-ae-z4-s0", "fashion_mnist-vae-z128-s0",
                           "fashion_mnist-vae-z4-s0", "mnist-vad-z10-s3"]
    mnist = got["mnist-vad-z10-s3"]
    # nested overrides merge key by key: the top-level likelihood kind stays, the block's sigma is added
    assert mnist["train"]["epochs"] == 2 and mnist["train"]["likelihood"] == {
        "kind": "gaussian_learned", "sigma": 0.3, "beta_nll": 0.0}
    assert mnist["flow"]["kind"] == "maf" and mnist["flow"]["layers"] == cfg["flow"]["layers"]
    assert got["fashion_mnist-ae-z4-s0"]["train"] == cfg["train"]


def test_grid_blocks_override_per_run_evaluation():
    cfg = resolve({"latent_sizes": [32], "eval": {"fid": {"n_samples": 300, "temperatures": [1.0, 0.8]}},
                   "grid": [{"datasets": ["fashion_mnist"]},
                            {"datasets": ["fashion_mnist"], "latent_sizes": [64],
                             "eval": {"fid": {"inception": "never"}, "posterior": {"n_images": 3}}}]})
    got = runs(cfg)
    assert got["fashion_mnist-ae-z32-s0"]["eval"] == cfg["eval"]
    z64 = got["fashion_mnist-ae-z64-s0"]["eval"]
    assert z64["fid"] == {**cfg["eval"]["fid"], "inception": "never"}  # merged key by key over the top level
    assert z64["posterior"] == {**cfg["eval"]["posterior"], "n_images": 3}
    assert z64["ood"] == cfg["eval"]["ood"] and z64["impute"] == cfg["eval"]["impute"]


def test_grid_with_matched_imputation_adds_runs_per_block():
    cfg = resolve({"datasets": {"mnist": {}}, "seeds": [0],
                   "grid": [{"datasets": ["mnist"], "latent_sizes": [8]}],
                   "eval": {"impute": {"matched": True, "ratios": [0.5], "modes": ["fixed"]}}})
    got = runs(cfg)
    assert sorted(got) == ["mnist-ae-z8-s0", "mnist-ae-z8-s0-miss0.5-fixed"]
    assert got["mnist-ae-z8-s0-miss0.5-fixed"]["missing"] == {"ratio": 0.5, "mode": "fixed"}


def test_named_grid_blocks_run_the_same_model_side_by_side():
    cfg = resolve({"datasets": {"mnist": {}}, "models": ["vae"], "latent_sizes": [8], "seeds": [0],
                   "grid": [{"datasets": ["mnist"], "name": "bern", "train": {"likelihood": {"kind": "bernoulli"}}},
                            {"datasets": ["mnist"], "name": "px", "train": {"likelihood": {"kind": "gaussian_pixel"}}},
                            {"datasets": ["mnist"]}],
                   "eval": {"impute": {"matched": True, "ratios": [0.5], "modes": ["fixed"]}}})
    got = runs(cfg)
    assert sorted(got) == ["mnist-vae-z8-s0", "mnist-vae-z8-s0-bern", "mnist-vae-z8-s0-bern-miss0.5-fixed",
                           "mnist-vae-z8-s0-miss0.5-fixed", "mnist-vae-z8-s0-px", "mnist-vae-z8-s0-px-miss0.5-fixed"]
    assert got["mnist-vae-z8-s0-bern"]["train"]["likelihood"]["kind"] == "bernoulli"
    assert got["mnist-vae-z8-s0-px-miss0.5-fixed"]["variant"] == "px" and got["mnist-vae-z8-s0"]["variant"] == ""
    with pytest.raises(PaeError, match="grid.0.name: 'a-b' does not match"):
        resolve({"grid": [{"datasets": ["fashion_mnist"], "name": "a-b"}]})  # '-' separates the id's parts
    with pytest.raises(PaeError, match="grid\\[1\\] repeats run fashion_mnist-ae-z8-s0-x"):
        resolve({"latent_sizes": [8], "grid": [{"datasets": ["fashion_mnist"], "name": "x"},
                                               {"datasets": ["fashion_mnist"], "name": "x"}]})


@pytest.mark.parametrize("grid, what", [
    ([{"datasets": ["mnist"]}], "grid[0].datasets: ['mnist'] have no entry in `datasets`"),
    ([{"datasets": ["fashion_mnist"], "train": {"epochs": 0}}], "train.epochs: 0 is less than the minimum"),
    ([{"datasets": ["fashion_mnist"], "flow": {"kind": "glow"}}], "flow.kind: 'glow' is not one of"),
    ([{"datasets": ["fashion_mnist"]}, {"datasets": ["fashion_mnist"], "latent_sizes": [8]}],
     "grid[1] repeats run fashion_mnist-ae-z8-s0"),
    ([{"datasets": ["fashion_mnist"], "models": ["gan"]}], "grid.0.models.0: 'gan' is not one of"),
    ([{"models": ["ae"]}], "'datasets' is a required property"),
    ([{"datasets": ["fashion_mnist"], "eval": {"fid": {"inception": "maybe"}}}],
     "eval.fid.inception: 'maybe' is not one of"),
    ([{"datasets": ["fashion_mnist"], "eval": {"ood": {"datasets": ["mnist"]}}}],
     "Additional properties are not allowed ('ood' was unexpected)"),
    ([{"datasets": ["fashion_mnist"], "eval": {"fid": {"weights": "w.pth"}}}],
     "grid[0].eval.fid.weights: the Inception weights are one file for the whole experiment"),
])
def test_bad_grid_is_caught_before_any_job(grid, what):
    with pytest.raises(PaeError) as e:
        resolve({"grid": grid})
    assert what in str(e.value)
