"""What a referee checks in a figure, as functions over a drawn matplotlib figure (structure, not pixels)."""
from __future__ import annotations

import itertools
import re

import numpy as np
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.text import Text

from pae.report.style import MIN_FONT_PT, PAGE_HEIGHT_IN, PAGE_IN


def small_texts(fig) -> list[tuple[str, float]]:
    """Visible, non-empty texts (titles, labels, ticks, legends, annotations) under MIN_FONT_PT at the figure's own
    size, which is the printed one."""
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT - 1e-9:
            out.append((t.get_text(), t.get_fontsize()))
    return out


def too_wide(fig) -> bool:
    return fig.get_figwidth() > PAGE_IN + 1e-9


def too_tall(fig) -> bool:
    return fig.get_figheight() > PAGE_HEIGHT_IN + 1e-9


def hidden_lines(fig) -> list[tuple[str, str]]:
    """Pairs of curves of one panel (labelled, or naming their model in their gid) drawn exactly on top of each
    other: one hides the other, yet the legend lists both."""
    out = []
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if ln.get_visible() and len(ln.get_xdata()) > 1
                 and (not ln.get_label().startswith("_") or ln.get_gid())]
        for a, b in itertools.combinations(lines, 2):
            xa, ya = np.asarray(a.get_xdata(), float), np.asarray(a.get_ydata(), float)
            xb, yb = np.asarray(b.get_xdata(), float), np.asarray(b.get_ydata(), float)
            if xa.shape == xb.shape and np.array_equal(xa, xb) and np.array_equal(ya, yb):
                out.append((a.get_gid() or a.get_label(), b.get_gid() or b.get_label()))
    return out


def _values_at(line, x: np.ndarray) -> np.ndarray:
    xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    if line.get_drawstyle().startswith("steps"):  # steps-post: each y holds until the next x
        return ys[np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(ys) - 1)]
    return np.interp(x, xs, ys)


def nearly_hidden_lines(fig, tol: float = 0.01) -> list[tuple[str, str]]:
    """Pairs of labelled curves of one panel in the same line style that never part by more than `tol` of the
    panel's y range: the one drawn first cannot be seen, though they are not identical. Two models' curves (gids
    "model/method" naming different models) are left out: two models with the same numbers is a result, shown as
    it is, where one quantity drawn twice (ROC curves of scores that rank alike) is a drawing's defect."""
    out = []
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if ln.get_visible() and len(ln.get_xdata()) > 1
                 and not ln.get_label().startswith("_")]
        scale = np.log10 if ax.get_yscale() == "log" else (lambda v: v)  # apart as drawn, on the panel's axis
        span = np.ptp(scale(np.asarray(ax.get_ylim())))
        for a, b in itertools.combinations(lines, 2):
            if a.get_linestyle() != b.get_linestyle() or a.get_marker() != b.get_marker():
                continue
            models = {str(ln.get_gid()).split("/")[0] for ln in (a, b) if ln.get_gid()}
            if len(models) == 2:
                continue
            xa, xb = np.asarray(a.get_xdata(), float), np.asarray(b.get_xdata(), float)
            x = np.union1d(xa, xb)
            x = x[(x >= max(xa.min(), xb.min())) & (x <= min(xa.max(), xb.max()))]
            if len(x) and np.max(np.abs(scale(_values_at(a, x)) - scale(_values_at(b, x)))) < tol * span:
                out.append((a.get_label(), b.get_label()))
    return out


def line_colours_by_gid(figs) -> dict[str, set[str]]:
    """Model -> the colours its curves have, over every panel of every figure (curves name their model in their
    gid, "model/method")."""
    out: dict[str, set[str]] = {}
    for fig in figs:
        for ln in fig.findobj(Line2D):
            gid = ln.get_gid()
            if gid and "/" in gid:
                out.setdefault(gid.split("/")[0], set()).add(to_hex(ln.get_color()))
    return out


def empty_fraction(fig, cells: int = 100) -> float:
    """The share of the canvas that no content covers, on a cells x cells raster: visible axes with their labels,
    and the figure's (and its subfigures') titles and legends."""
    renderer = fig.canvas.get_renderer()
    covered = np.zeros((cells, cells), bool)
    w, h = fig.bbox.width, fig.bbox.height
    titles = [t for f in (fig, *fig.subfigs, *(g for sub in fig.subfigs for g in sub.subfigs))
              for t in (f._suptitle,) if t is not None and t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in titles] + [lg.get_window_extent(renderer) for lg in fig.legends]
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison and not ax.images and not ax.texts:
            continue
        box = ax.get_tightbbox(renderer)
        if box is not None:
            boxes.append(box)
    for box in boxes:
        x0, x1 = (np.clip([box.x0 / w, box.x1 / w], 0, 1) * cells).astype(int)
        y0, y1 = (np.clip([box.y0 / h, box.y1 / h], 0, 1) * cells).astype(int)
        covered[y0:y1, x0:x1] = True
    return 1 - covered.mean()


def colour_bars(fig) -> list:
    """The colour bars of a figure (their axes)."""
    return [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def overlapping_panels(fig) -> list[tuple[str, str]]:
    """Pairs of axes whose extents, titles, tick labels and axis labels included, overlap by more than a pixel."""
    renderer = fig.canvas.get_renderer()
    boxes = [(ax, ax.get_tightbbox(renderer)) for ax in fig.axes if ax.get_visible()]
    out = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        if ba is None or bb is None:
            continue
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > 1 and h > 1:
            out.append(tuple(ax.get_title() or ax.get_ylabel() or ax.get_label() for ax in (a, b)))
    return out


def cut_off(fig) -> list[str]:
    """Visible, non-empty texts that reach beyond the canvas (cut off when saved at the figure's size)."""
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    # tick labels are laid out for every tick, drawn only for those inside the axis' range: left out here
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_ticklabels(which="both")}
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in ticks:
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


# a config key or a run id where words belong: "fashion_mnist", "recon_mse", "mnist-vae-z10-s0"
CODE_NAME = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b[a-z_]+-[a-z_]+-z\d+-s\d+\b")


def code_names(fig) -> list[str]:
    """Visible texts that name a run or a setting by its config key rather than in words."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and CODE_NAME.search(t.get_text())]


def referee(fig) -> list[str]:
    """Every general defect of a figure, in words (empty for a figure that passes)."""
    problems = [f"text under {MIN_FONT_PT} pt: {t!r} at {s:g} pt" for t, s in small_texts(fig)]
    problems += [f"{fig.get_figwidth():.2f} in wide, wider than the page"] if too_wide(fig) else []
    problems += [f"{fig.get_figheight():.2f} in tall, taller than the page"] if too_tall(fig) else []
    problems += [f"curves {a!r} and {b!r} drawn on top of each other" for a, b in hidden_lines(fig)]
    problems += [f"curve {a!r} hidden under {b!r} (never more than 1% of the panel apart)"
                 for a, b in nearly_hidden_lines(fig)]
    problems += [f"panels {a!r} and {b!r} overlap" for a, b in overlapping_panels(fig)]
    problems += [f"text {t!r} cut off at the canvas's edge" for t in cut_off(fig)]
    problems += [f"text {t!r} names a config key, not the thing in words" for t in code_names(fig)]
    return problems
