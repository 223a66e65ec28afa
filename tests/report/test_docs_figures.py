"""Every figure committed under docs/ (the example report and the reproductions), drawn from its figure data by
today's drawers, passes the referee's checks: real grids find what the synthetic ones miss (a title running off a
two-column figure, legends wider than the page, two models' curves a pixel apart on a linear axis)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from pae.report import figdata, figures, uncertainty  # noqa: F401 (uncertainty registers its drawers)
from tests.report import checks

DOCS = Path(__file__).resolve().parents[2] / "docs"
DATA = sorted(DOCS.glob("**/figures/data/*.h5"))


def test_the_docs_have_figure_data():
    assert len(DATA) > 50 and {p.parents[2].name for p in DATA} >= {"example-report", "fig6-mnist", "uncertainty"}


@pytest.mark.parametrize("folder", sorted({p.parents[2] for p in DATA}), ids=lambda p: p.name)
def test_every_docs_figure_passes_the_referee(folder):
    problems = {}
    for data in sorted((folder / "figures" / "data").glob("*.h5")):
        kind, meta, arrays = figdata.load(data)
        fig = figures.DRAWERS[kind](meta, arrays)
        fig.canvas.draw()
        if found := checks.referee(fig):
            problems[data.name] = found
        plt.close(fig)
    assert problems == {}
