"""Numbers written with an exponent and no dot (`lr: 1e-3`): YAML 1.1 (PyYAML, and so snakemake's --configfile)
reads them as strings; pae reads them as numbers wherever the schema wants a number, and only there."""
from __future__ import annotations

import pytest
import yaml

from pae.config import grid_blocks, load, read_yaml, resolve
from pae.io import PaeError
from tests.helpers import run_pae

CONFIG = """\
datasets: {mnist: {}}
train: {lr: 1e-3, weight_decay: 5E-5}
flow: {lr: 2.5e-4}
grid:
  - datasets: [mnist]
    train: {lr: 3e-4}
"""


def test_check_config_reads_exponents_as_numbers(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    cfg = yaml.safe_load(run_pae("check-config", path).stdout)
    assert (cfg["train"]["lr"], cfg["train"]["weight_decay"], cfg["flow"]["lr"]) == (1e-3, 5e-5, 2.5e-4)
    assert load(path)["grid"][0]["train"]["lr"] == 3e-4


def test_the_workflow_path_snakemake_strings_are_numbers_where_the_schema_wants_one(tmp_path):
    from snakemake.common.configfile import load_configfile  # what the Snakefile's --configfile goes through

    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    given = load_configfile(path)
    assert given["train"]["lr"] == "1e-3"  # the string pae.config.resolve receives
    cfg = resolve(given)
    assert (cfg["train"]["lr"], cfg["train"]["weight_decay"], cfg["flow"]["lr"]) == (1e-3, 5e-5, 2.5e-4)
    assert isinstance(cfg["train"]["lr"], float)
    assert grid_blocks(cfg)[0]["train"]["lr"] == 3e-4  # a grid block's overrides too


def test_only_numbers_are_coerced_and_bad_values_still_name_the_key():
    cfg = resolve({"experiment": "1e3", "train": {"lr": "-1.5E-2"}}, validate=False)
    assert cfg["experiment"] == "1e3"  # a string where a string is wanted stays one
    with pytest.raises(PaeError, match=r"train\.lr: 'abc' is not of type 'number'"):
        resolve({"train": {"lr": "abc"}})
    with pytest.raises(PaeError, match=r"flow\.layers: '1e1' is not of type 'integer'"):
        resolve({"flow": {"layers": "1e1"}})  # only where the schema wants a number
    with pytest.raises(PaeError, match=r"train\.lr: '1e-3x' is not of type 'number'"):
        resolve({"train": {"lr": "1e-3x"}})
    with pytest.raises(PaeError, match=r"(?s)grid\[0\]: .*train\.lr: 'fast' is not of type 'number'"):
        resolve({"datasets": {"mnist": {}}, "grid": [{"datasets": ["mnist"], "train": {"lr": "fast"}}]})


def test_read_yaml_follows_yaml_1_2_floats():
    assert read_yaml("a: 1e-3\nb: -2E+4\nc: 12\nd: '1e-3'\ne: 1e\nf: 0.5") == {
        "a": 1e-3, "b": -2e4, "c": 12, "d": "1e-3", "e": "1e", "f": 0.5}
