"""`export`: copy a report with only what it shows and what redraws it (the committed example report and the
reproduction reports under docs/): report.md, its tables, the figures it links to and each one's figure data
(figures/data/{name}.h5), so `python -m pae report --from DEST` redraws every figure without the runs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pae.io import PaeError
from pae.report import figdata
from pae.report.markdown import FIGURE_LINK


def export(report: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy report.md, its tables/, the figures it links to and their data into `dest` (replaced as a whole, so the
    copy never mixes two runs of the report). Returns the files written."""
    report = Path(report)
    if not report.is_file():
        raise PaeError(f"{report}: no report to export (run the report stage first)")
    src, dest = report.parent, Path(dest)
    links = FIGURE_LINK.findall(report.read_text())
    missing = [link for link in links if not (src / link).is_file()]
    if missing:
        raise PaeError(f"{report}: links to missing figures {missing}")
    data = [(Path(link).parent / figdata.DATA_DIR / f"{Path(link).stem}.h5").as_posix() for link in links]
    missing = [d for d in data if not (src / d).is_file()]
    if missing:
        raise PaeError(f"{report}: the figure data {missing} is missing (written by the report stage since figures "
                       "can be redrawn from it): rerun the report stage, then export")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    written = []
    try:
        for rel in ["report.md", *links, *data,
                    *(p.relative_to(src).as_posix() for p in sorted((src / "tables").glob("*.csv")))]:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, tmp / rel)
            written.append(dest / rel)
    except OSError as e:  # the previous export stays as it was; no half-made copy is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise PaeError(f"exporting {report} to {dest}: {e}") from None
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return written
