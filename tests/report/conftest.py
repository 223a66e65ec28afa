"""Figures drawn in a test are kept open to be checked; each test closes its own."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def close_figures(monkeypatch):
    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)
    yield
    plt.close("all")
