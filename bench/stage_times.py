"""Per-stage wall times and peak memory of an experiment, from the benchmark files snakemake writes for every job:
benchmarks/{exp}/{run}/{stage}.tsv, benchmarks/{exp}/classifiers/{data}.tsv (train_classifier),
benchmarks/{exp}/fid_reference/{data}/{key}.tsv (fid_reference),
benchmarks/{exp}/report.tsv, and benchmarks/prepare/{data}.tsv (shared by every experiment that uses the dataset).

Prints, per stage: jobs, median and max seconds, total seconds, and the largest max_rss (MB); with --by model (or
dataset, latent), one row per stage and group. Run it in the snakemake working directory (or give --benchmarks).
A benchmark file with several rows (snakemake's `repeat`) counts as the mean of its rows; empty files are skipped.

    .venv/bin/python bench/stage_times.py EXPERIMENT [--benchmarks benchmarks] [--by model] [--no-prepare]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

RUN_ID = re.compile(r"^(?P<dataset>.+)-(?P<model>ae|vae|beta_vae|vad)-z(?P<latent>\d+)-s(?P<seed>\d+)"
                    r"(?P<missing>-miss.+)?$")
STAGE_ORDER = ["prepare", "train_classifier", "fid_reference", "train", "encode", "fit_flow", "evaluate", "fid",
               "ood", "posterior", "impute", "report"]


def classify(path: Path, exp_dir: Path, prepare_dir: Path) -> dict:
    """Stage and run fields of one benchmark file."""
    if path.parent == prepare_dir:
        return {"stage": "prepare", "run": "", "dataset": path.stem}
    rel = path.relative_to(exp_dir)
    if len(rel.parts) == 1:
        return {"stage": rel.stem, "run": ""}
    if rel.parts[0] == "classifiers":
        return {"stage": "train_classifier", "run": "", "dataset": path.stem}
    if rel.parts[0] == "fid_reference":
        return {"stage": "fid_reference", "run": "", "dataset": rel.parts[1]}
    row = {"stage": path.stem, "run": rel.parts[0]}
    m = RUN_ID.match(rel.parts[0])
    if m:
        row.update(dataset=m["dataset"], model=m["model"] + ("+missing" if m["missing"] else ""),
                   latent=int(m["latent"]))
    return row


def read(paths: list[Path], exp_dir: Path, prepare_dir: Path) -> tuple[pd.DataFrame, list[Path]]:
    rows, skipped = [], []
    for path in paths:
        try:
            tsv = pd.read_csv(path, sep="\t")
        except pd.errors.EmptyDataError:
            skipped.append(path)
            continue
        if tsv.empty or "s" not in tsv:
            skipped.append(path)
            continue
        rows.append({**classify(path, exp_dir, prepare_dir), "s": tsv["s"].mean(),
                     "max_rss": pd.to_numeric(tsv.get("max_rss"), errors="coerce").max(), "file": str(path)})
    return pd.DataFrame(rows), skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment", help="the config's `experiment` name (benchmarks/EXPERIMENT/)")
    ap.add_argument("--benchmarks", type=Path, default=Path("benchmarks"), help="the benchmarks folder")
    ap.add_argument("--by", choices=["model", "dataset", "latent"], help="one row per stage and this field")
    ap.add_argument("--no-prepare", action="store_true", help="leave out benchmarks/prepare/ (shared by experiments)")
    args = ap.parse_args()
    exp_dir, prepare_dir = args.benchmarks / args.experiment, args.benchmarks / "prepare"
    if not exp_dir.is_dir():
        sys.exit(f"error: {exp_dir}: no such folder (run in the snakemake working directory or give --benchmarks)")
    paths = sorted(exp_dir.rglob("*.tsv"))
    if not args.no_prepare:
        paths += sorted(prepare_dir.glob("*.tsv"))
    df, skipped = read(paths, exp_dir, prepare_dir)
    if df.empty:
        sys.exit(f"error: no benchmark rows under {exp_dir}" + (f" ({len(skipped)} empty files)" if skipped else ""))

    keys = ["stage"] + ([args.by] if args.by else [])
    if args.by and args.by not in df:
        df[args.by] = pd.NA
    df[keys[1:]] = df[keys[1:]].astype("string").fillna("-")
    table = df.groupby(keys, sort=False).agg(jobs=("s", "size"), median_s=("s", "median"), max_s=("s", "max"),
                                             total_s=("s", "sum"), max_rss_mb=("max_rss", "max")).reset_index()
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    table = table.sort_values(keys, key=lambda col: col.map(lambda s: order.get(s, len(order))) if col.name == "stage"
                              else col).reset_index(drop=True)
    total = pd.DataFrame([{"stage": "all", **{k: "" for k in keys[1:]}, "jobs": table["jobs"].sum(),
                           "median_s": df["s"].median(), "max_s": df["s"].max(), "total_s": df["s"].sum(),
                           "max_rss_mb": df["max_rss"].max()}])
    table = pd.concat([table, total], ignore_index=True)

    print(f"{exp_dir}: {len(df)} benchmark files" + ("" if args.no_prepare else f" (+ {prepare_dir})")
          + (f"; {len(skipped)} empty or unreadable files skipped" if skipped else ""))
    print(table.to_string(index=False, formatters={"median_s": "{:.1f}".format, "max_s": "{:.1f}".format,
                                                   "total_s": "{:.1f}".format, "max_rss_mb": "{:,.0f}".format}))
    print(f"\nseconds: wall clock of each job (snakemake's `s`); total_s: the sum over jobs ({df['s'].sum() / 3600:.2f} "
          "h in all), which is the wall time with one job at a time; max_rss_mb: the largest peak resident memory.")


if __name__ == "__main__":
    main()
