"""The check-config command: validate a config file and print it with every default filled in."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configfile", type=Path)


def run(a: argparse.Namespace) -> None:
    print(check_config(a.configfile))


def check_config(path: Path) -> str:
    """The config file with every default filled in, as YAML (raises PaeError naming a bad key)."""
    import yaml

    from pae.config import load
    return yaml.safe_dump(load(path), sort_keys=False)
