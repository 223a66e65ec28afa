"""The check-config command: validate a config file and print it with every default filled in (each dataset entry
with the keys its dataset uses: image_size only for the datasets whose images are resized)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configfile", type=Path)


def run(a: argparse.Namespace) -> None:
    print(check_config(a.configfile))


def check_config(path: Path) -> str:
    """The config file with every default filled in, as YAML (raises PaeError naming a bad key). A dataset entry
    shows only the keys its dataset uses (pae.config.data_spec); a key the file sets for a dataset that ignores it
    is named in a comment above the YAML."""
    import yaml

    from pae.config import DATASET_ONLY_KEYS, data_spec, load, read_yaml

    config = load(path)
    given = (read_yaml(Path(path).read_text()) or {}).get("datasets") or {}
    ignored = [f"# datasets.{d}.{k} is ignored: only {', '.join(DATASET_ONLY_KEYS[k])} use it"
               for d, entry in given.items() if isinstance(entry, dict) for k in entry
               if k in DATASET_ONLY_KEYS and d not in DATASET_ONLY_KEYS[k]]
    config["datasets"] = {d: data_spec(d, entry) for d, entry in config["datasets"].items()}
    return "\n".join([*ignored, yaml.safe_dump(config, sort_keys=False)])
