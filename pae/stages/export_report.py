"""The export-report command: copy a report.md with its tables, the figures it shows and their data (the committed
example report; `python -m pae report --from DEST` redraws its figures)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("report", type=Path, help="results/{exp}/report.md")
    p.add_argument("dest", type=Path, help="folder to (re)create, e.g. docs/example-report")


def run(a: argparse.Namespace) -> None:
    print(f"wrote {len(export_report(a.report, a.dest))} files to {a.dest}")


def export_report(report_path: Path, dest: Path) -> list[Path]:
    """Copy report.md with its tables, the figures it links to and their data (pae.report.export)."""
    from pae.report.export import export

    return export(report_path, dest)
