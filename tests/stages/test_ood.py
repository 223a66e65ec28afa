"""The ood stage end to end on tiny synthetic data: an AE trained briefly on the synthetic blobs, scored against
other blobs, inverted blobs, both flips and a folder of PNGs (every set x score written, AUROCs in [0, 1], the
inverted images detected by the reconstruction error); an untrained VAE (the ELBO score, no Jacobian); a dataset of
another shape refused before anything is written."""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace

import pytest
import torch
from PIL import Image

from pae.data.loader import to_float
from pae.data.store import write_dataset
from pae.flows import FlowSpec, build_flow, save_flow
from pae.io import PaeError
from pae.models import ModelSpec, build_model, save_model
from pae.stages.ood import ood
from tests.helpers import synthetic_raw

SPEC = ModelSpec(kind="ae", arch="mlp", image_shape=(1, 28, 28), latent_dim=4, channels=(64,), hidden=32)
FLOW = FlowSpec(kind="realnvp", layers=2, hidden=16, blocks=1, bins=4, tail_bound=3.0, epochs=1, patience=1,
                batch_size=32, lr=1e-3)


def _save(folder, model, spec):
    """model.pt and a flow standardised on the model's train latents (untrained coupling layers)."""
    with torch.no_grad():
        z = model.eval().encode(to_float(torch.from_numpy(synthetic_raw().train_images)))
    save_model(folder / "model.pt", model, spec, {})
    save_flow(folder / "flow.pt", build_flow(FLOW, spec.latent_dim, z.mean(0), z.std(0)), FLOW, {})
    return folder / "model.pt", folder / "flow.pt"


@pytest.fixture(scope="module")
def trained_ae(tmp_path_factory):
    """An MLP AE fitted for 100 full-batch Adam steps on the synthetic blobs (reconstruction MSE ~ 0.002)."""
    torch.manual_seed(0)
    model = build_model(SPEC)
    x = to_float(torch.from_numpy(synthetic_raw().train_images))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _save(tmp_path_factory.mktemp("ae"), model, SPEC)


def _dataset(path, raw):
    write_dataset(path, path.stem, raw, val_size=20, split_seed=0)
    return path


def _spec(**kw):
    return {"datasets": "auto", "transforms": ["hflip", "vflip"], "folders": {}, "max_images": 30, "bootstrap": 20,
            "batch_size": 16, "jacobian": True, **kw}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ae_end_to_end_detects_inverted_images(trained_ae, synthetic_h5, tmp_path):
    blobs = synthetic_raw(seed=1)
    inverted = replace(blobs, train_images=255 - blobs.train_images, test_images=255 - blobs.test_images)
    ood_data = {"blobs": _dataset(tmp_path / "blobs.h5", blobs), "inverted": _dataset(tmp_path / "inv.h5", inverted)}
    pngs = tmp_path / "pngs"
    (pngs / "sub").mkdir(parents=True)
    for i, colour in enumerate([(200, 30, 30), (0, 0, 0), (255, 255, 255)]):
        Image.new("RGB", (32, 40), colour).save(pngs / ("sub" if i else "") / f"{i}.png")
    out, scores_out = tmp_path / "metrics" / "ood.json", tmp_path / "metrics" / "ood_scores.csv"
    model_path, flow_path = trained_ae

    ood(_spec(folders={"pngs": str(pngs)}), model_path, flow_path, synthetic_h5, ood_data, out, scores_out, "cpu")

    result = json.loads(out.read_text())
    sets = {"blobs", "inverted", "hflip", "vflip", "folder:pngs"}
    scores = {"flow_logp", "recon_mse", "pae_density", "pae_marginal"}  # no elbo: an AE has no posterior
    assert set(result["sets"]) == set(result["metrics"]) == sets and set(result["scores"]) == scores
    assert result["in_distribution"] == {"dataset": str(synthetic_h5), "source": f"{synthetic_h5} (test split)",
                                         "n": 30, "n_available": 40, "nonfinite": dict.fromkeys(scores, 0)}
    assert result["sets"]["folder:pngs"]["n"] == 3 and result["sets"]["inverted"]["n"] == 30
    for name, by_score in result["metrics"].items():
        assert set(by_score) == scores, name
        for score, m in by_score.items():
            assert set(m) == {"auroc", "aupr", "fpr95"}
            auroc = m["auroc"]
            assert 0 <= auroc["low"] <= auroc["value"] <= auroc["high"] <= 1, (name, score)
            assert auroc["n_boot"] == 20
    assert result["metrics"]["inverted"]["recon_mse"]["auroc"]["value"] > 0.9

    rows = _rows(scores_out)
    assert list(rows[0]) == ["set", "index", "flow_logp", "recon_mse", "pae_density", "pae_marginal"]
    assert Counter(r["set"] for r in rows) == {"in": 30, **{s: result["sets"][s]["n"] for s in sets}}
    index = {s: [int(r["index"]) for r in rows if r["set"] == s] for s in ("in", "hflip", "vflip")}
    assert index["in"] == index["hflip"] == index["vflip"] == sorted(set(index["in"]))  # flips pair up with "in"
    assert all(float(r[k]) == float(r[k]) and abs(float(r[k])) < 1e30 for r in rows for k in scores)
    assert not list(out.parent.glob(".*tmp"))  # atomic writes leave no temporaries


def test_vae_gets_the_elbo_score_and_no_jacobian_when_off(synthetic_h5, tmp_path):
    spec = replace(SPEC, kind="vae")
    torch.manual_seed(0)
    model_path, flow_path = _save(tmp_path, build_model(spec), spec)
    out, scores_out = tmp_path / "ood.json", tmp_path / "ood_scores.csv"

    ood(_spec(transforms=["vflip"], jacobian=False, bootstrap=0), model_path, flow_path, synthetic_h5, {}, out,
        scores_out, "cpu")

    result = json.loads(out.read_text())
    assert set(result["sets"]) == {"vflip"} and set(result["scores"]) == {"flow_logp", "recon_mse", "elbo"}
    m = result["metrics"]["vflip"]
    assert set(m) == {"flow_logp", "recon_mse", "elbo"}
    assert all(0 <= v["auroc"]["value"] <= 1 and v["auroc"]["low"] is None for v in m.values())
    rows = _rows(scores_out)
    assert list(rows[0]) == ["set", "index", "flow_logp", "recon_mse", "elbo"] and len(rows) == 60


def test_an_ood_dataset_of_another_shape_is_refused(trained_ae, synthetic_h5, tmp_path):
    rgb = _dataset(tmp_path / "rgb.h5", synthetic_raw(shape=(3, 28, 28)))
    out = tmp_path / "ood.json"
    with pytest.raises(PaeError) as e:
        ood(_spec(), *trained_ae, synthetic_h5, {"rgb": rgb}, out, tmp_path / "ood_scores.csv", "cpu")
    assert str(rgb) in str(e.value) and str(synthetic_h5) in str(e.value) and "(3, 28, 28)" in str(e.value)
    assert not out.exists()
