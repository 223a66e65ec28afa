"""The setup-data command (`make data`): find or install the data of the demo and the tests
(pae.data.sources.setup_data)."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass  # no arguments


def run(a: argparse.Namespace) -> None:
    from pae.data.sources import setup_data

    setup_data()
