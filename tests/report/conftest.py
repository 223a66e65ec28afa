"""The report's figures kept open for inspection instead of saved."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from pae.report import figures, uncertainty


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report's functions would save, laid out (drawn once) and kept open instead."""
    kept = []

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)

    for module in (figures, uncertainty):  # each holds its own name for _save
        monkeypatch.setattr(module, "_save", keep)
    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)
    yield kept
    plt.close("all")
