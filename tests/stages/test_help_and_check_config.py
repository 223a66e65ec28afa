"""`python -m pae -h` names every stage, and `check-config` shows each dataset only the keys it uses."""
from __future__ import annotations

import yaml

from pae import stages
from pae.__main__ import _parser, description
from pae.stages.check_config import check_config
from tests.helpers import REPO


def test_help_names_every_stage():
    text = description()
    missing = [name for name in stages.STAGES if name not in text]
    assert not missing, f"python -m pae -h leaves out {missing}"
    assert "uncertainty" in text and "install-profile" in text
    assert description() in _parser().format_help()


def test_check_config_shows_image_size_only_where_it_is_used(tmp_path):
    demo = yaml.safe_load(check_config(REPO / "configs" / "demo.yaml"))
    assert "image_size" not in demo["datasets"]["fashion_mnist"] and demo["datasets"]["fashion_mnist"]["val_size"]
    config = tmp_path / "c.yaml"
    config.write_text("datasets: {mnist: {image_size: 32}, celeba: {}}\n")
    out = check_config(config)
    resolved = yaml.safe_load(out)
    assert "image_size" not in resolved["datasets"]["mnist"] and resolved["datasets"]["celeba"]["image_size"] == 64
    # a key set where it does nothing is named, not silently dropped
    assert out.startswith("# datasets.mnist.image_size is ignored: only celeba, image_folder use it\n")
