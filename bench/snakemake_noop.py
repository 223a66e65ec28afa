"""Snakemake no-op time for a config's whole DAG: what it costs to ask "is anything left to do?" of a finished grid.

In a temporary working directory (`snakemake -s Snakefile -d TMP --config results_dir=TMP/results
resources_dir=TMP/resources`, so nothing is written into the repository's results/, resources/ or .snakemake/):

1. the DAG's jobs are listed through snakemake's Python API, in topological levels (snakemake.api; the DAG is built
   as `snakemake --summary` builds it);
2. every output, benchmark and log file of every job is created empty (directory outputs as directories), level by
   level, with mtimes increasing from level to level, as a finished run would leave them;
3. unless --no-metadata, `snakemake --touch --forceall --cores 1` marks every job done, which records snakemake's
   per-file metadata (params, code, input lists) as real runs do, so that the no-op below checks those rerun
   triggers too (without metadata snakemake skips them; this step takes ~0.1 s of sleep per job);
4. (a) `snakemake -n` (DAG build + dry run) and (b) `snakemake --cores 1` (a real run) are timed --repeats times
   each; every one must print "Nothing to be done", else the script says what snakemake wanted to run and fails.

Prints the number of jobs and the median (min, max) seconds of each. Figures only; no target is asserted.

    .venv/bin/python bench/snakemake_noop.py [--configfile configs/paper.yaml] [--repeats 3] [--no-metadata] [--keep]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTHING = "Nothing to be done"


def config_overrides(tmp: Path) -> dict[str, str]:
    return {"results_dir": str(tmp / "results"), "resources_dir": str(tmp / "resources")}


def dag_levels(snakefile: Path, configfile: Path, tmp: Path) -> list[list[dict]]:
    """The DAG's jobs in topological levels (a job's inputs come from earlier levels): rule, outputs (with a flag for
    directory outputs), benchmark and logs, paths as snakemake resolves them relative to `tmp`."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                        config_settings=ConfigSettings(configfiles=[configfile],
                                                                       config=config_overrides(tmp)),
                                        snakefile=snakefile, workdir=tmp)
            workflow_api.dag(DAGSettings())  # sets the workflow's DAG settings
            workflow = workflow_api._workflow  # noqa: SLF001 (no public API lists the jobs' files)
            workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
            workflow._build_dag()
            return [[{"rule": job.rule.name,
                      "output": [(str(f), bool(f.is_directory)) for f in job.output],
                      "benchmark": str(job.benchmark) if job.benchmark else None,
                      "log": [str(f) for f in job.log]} for job in level]
                    for level in workflow.dag.toposorted()]
    finally:
        os.chdir(cwd)


def materialise(levels: list[list[dict]], tmp: Path) -> int:
    """Create every job's files, level by level, each level ten seconds newer than the one before; returns the
    number of paths created."""
    t0, n = time.time() - 10 * len(levels) - 60, 0
    for i, level in enumerate(levels):
        stamp = (t0 + 10 * i, t0 + 10 * i)
        for job in level:
            paths = [(p, d) for p, d in job["output"]] + [(p, False) for p in job["log"]]
            if job["benchmark"]:
                paths.append((job["benchmark"], False))
            for p, is_dir in paths:
                path = Path(p) if Path(p).is_absolute() else tmp / p
                if is_dir:
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                os.utime(path, stamp)
                n += 1
    return n


def run_snakemake(args: list[str], snakefile: Path, configfile: Path, tmp: Path) -> tuple[float, str, int]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(tmp), "--configfile", str(configfile),
           "--config", *(f"{k}={v}" for k, v in config_overrides(tmp).items()), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.stdout + proc.stderr, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "configs" / "paper.yaml")
    ap.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-metadata", action="store_true",
                    help="skip the `--touch --forceall` step that records snakemake's metadata")
    ap.add_argument("--keep", action="store_true", help="keep the temporary working directory (its path is printed)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    configfile, snakefile = args.configfile.resolve(), args.snakefile.resolve()
    if not configfile.is_file():
        sys.exit(f"error: {configfile}: no such config file")

    import snakemake
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"snakemake {snakemake.__version__}, load average {os.getloadavg()[0]:.2f} at start")
    tmp = Path(tempfile.mkdtemp(prefix="pae-bench-noop-"))
    try:
        t0 = time.perf_counter()
        levels = dag_levels(snakefile, configfile, tmp)
        jobs = [job for level in levels for job in level]
        rules: dict[str, int] = {}
        for job in jobs:
            rules[job["rule"]] = rules.get(job["rule"], 0) + 1
        n_files = materialise(levels, tmp)
        print(f"config {configfile}: {len(jobs)} jobs in {len(levels)} levels "
              f"({', '.join(f'{r} {n}' for r, n in sorted(rules.items(), key=lambda kv: -kv[1]))}); "
              f"{n_files} files created in {tmp} ({time.perf_counter() - t0:.1f} s)")
        if not args.no_metadata:
            seconds, out, rc = run_snakemake(["--touch", "--forceall", "--cores", "1", "--quiet"], snakefile,
                                             configfile, tmp)
            if rc != 0:
                print(out[-4000:])
                sys.exit(f"error: snakemake --touch --forceall failed (exit status {rc}); the output's end is above")
            n_meta = sum(len(files) for _, _, files in os.walk(tmp / ".snakemake" / "metadata"))
            print(f"metadata: `snakemake --touch --forceall` recorded {n_meta} metadata records ({seconds:.1f} s)")
        else:
            print("metadata: none recorded (--no-metadata): the no-op skips the params/code rerun triggers")
        runs = {"snakemake -n (DAG + dry run)": ["-n"], "snakemake --cores 1 (real run)": ["--cores", "1"]}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.repeats):
            for name, extra in runs.items():
                seconds, out, rc = run_snakemake(extra, snakefile, configfile, tmp)
                if rc != 0 or NOTHING not in out:
                    print(out[-4000:])
                    sys.exit(f"error: {name} (round {r + 1}) was not a no-op (exit status {rc}, no {NOTHING!r} in "
                             "its output; the output's end is above)")
                times[name].append(seconds)
                print(f"  round {r + 1}: {name:<32s} {seconds:6.2f} s, {NOTHING!r} (exit 0), load "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
        print()
        print(f"{'command':<32s} {'jobs':>6s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
        for name, ts in times.items():
            print(f"{name:<32s} {len(jobs):>6d} {statistics.median(ts):>9.2f} {min(ts):>7.2f} {max(ts):>7.2f}")
        print()
        print(f"Every run printed {NOTHING!r}: a true no-op. Times are wall clock of the whole snakemake process "
              "(interpreter start, config validation, DAG build, up-to-date checks).")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
