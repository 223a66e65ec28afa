"""Argument types shared by the stages' parsers (no heavy imports: building a parser must not load torch)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pae.config import default


def json_object(text: str) -> dict:
    """A `--spec`-like argument: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def named_path(text: str) -> tuple[str, Path]:
    """NAME=FILE -> (NAME, Path(FILE))."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def add_run_inputs(p: argparse.ArgumentParser, spec_help: str, latents: bool) -> None:
    """The arguments of the per-run evaluation stages: spec, model, flow, data (latents), out, device."""
    p.add_argument("--spec", type=json_object, required=True, help=spec_help)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--flow", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    if latents:
        p.add_argument("--latents", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the metrics JSON file")
    p.add_argument("--device", default=default("device"))
