"""One meaning of "default": the schema (pae/config.schema.yaml) is the one place defaults are written. Every
dataclass field and stage argument that stands for a schema key takes its default from there, and no code reads a
schema key with a fallback value of its own."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

from pae import config, stages
from pae.flows.latent_flow import FlowSpec
from pae.models import ModelSpec
from pae.models.likelihoods import LikelihoodSpec

PAE = Path(config.__file__).parent

# dataclass field -> the schema key it stands for
FIELDS = {
    (LikelihoodSpec, "kind"): "train.likelihood.kind", (LikelihoodSpec, "sigma"): "train.likelihood.sigma",
    (LikelihoodSpec, "beta_nll"): "train.likelihood.beta_nll",
    (ModelSpec, "posterior"): "train.posterior", (ModelSpec, "capacity"): "train.beta_vae.capacity",
    (ModelSpec, "capacity_steps"): "train.beta_vae.capacity_steps", (ModelSpec, "gamma"): "train.beta_vae.gamma",
    (ModelSpec, "posterior_logvar"): "train.posterior_logvar", (ModelSpec, "kl_weight"): "train.kl_weight",
    (ModelSpec, "infer_steps"): "train.vad.infer_steps", (ModelSpec, "infer_lr"): "train.vad.infer_lr",
    (ModelSpec, "init_std"): "train.vad.init_std",
    (ModelSpec, "dropout"): "train.dropout", (FlowSpec, "divergence_nats"): "flow.divergence_nats",
    (FlowSpec, "noise"): "flow.noise",
}


@pytest.mark.parametrize("cls, name", list(FIELDS), ids=[f"{c.__name__}.{n}" for c, n in FIELDS])
def test_dataclass_defaults_are_the_schemas(cls, name):
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    assert field.default == config.default(FIELDS[cls, name])


def test_dataclass_fields_named_like_schema_keys_are_all_listed():
    """A new field with a default, named like a key of the train or flow section, must be listed above (seed: the
    run's; beta: the beta-VAE's, from train.beta_vae.beta; likelihood: made of listed fields)."""
    keys = set(config.default("train")) | set(config.default("train.beta_vae")) | set(config.default("train.vad")) \
        | set(config.default("train.likelihood")) | set(config.default("flow"))
    for cls in (LikelihoodSpec, ModelSpec, FlowSpec):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING and f.name in keys and f.name not in ("seed", "beta", "likelihood"):
                assert (cls, f.name) in FIELDS, f"{cls.__name__}.{f.name} has a default of its own"


@pytest.mark.parametrize("stage, dest, key", [
    ("train", "device", "device"), ("encode", "device", "device"), ("fid", "device", "device"),
    ("encode", "missing", "train.missing"), ("impute", "train_missing", "train.missing"),
    ("uncertainty", "device", "device"), ("uncertainty", "batch_size", "eval.batch_size"),
])
def test_stage_arguments_default_to_the_schema(stage, dest, key):
    p = argparse.ArgumentParser()
    importlib.import_module(f"pae.stages.{stages.STAGES[stage][0]}").add_arguments(p)
    assert p.get_default(dest) == config.default(key)


def test_no_code_reads_a_schema_key_with_a_fallback_of_its_own():
    """`spec.get("val_size", 5000)`-style reads of a key the schema defines would be a second default."""
    keys = set()
    for section in ("train", "flow", "eval"):
        value = config.default(section)
        keys |= set(value)
        keys |= {k for v in value.values() if isinstance(v, dict) for k in v}
    keys |= set(config.default_data_entry()) | {"device"}
    found = []
    for path in PAE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value in keys and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value is not None:
                found.append(f"{path.relative_to(PAE)}:{node.lineno} .get({node.args[0].value!r}, "
                             f"{node.args[1].value!r})")
    assert not found, found
