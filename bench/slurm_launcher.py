"""The SLURM launcher's cost on the login node: memory per job in flight, and per-job overhead (issue 15, points 1
and 7). Needs a SLURM cluster (cluster/local-slurm/ here).

The stage is `train` (whose module imports torch: the case where a launcher that parses the stage's arguments on the
login node pays for torch), on a tiny synthetic dataset written to a temporary folder: 300 28x28 images, a conv AE
of latent 4, one epoch.

memory    --jobs launchers (`python -m pae --launcher slurm --job ... train ...`, what the train rule runs) are
          started at once, each with a job held pending (`--begin=now+600`), so that all are in flight and waiting;
          once every one has submitted, each launcher's private memory (Private_Clean + Private_Dirty of
          /proc/PID/smaps_rollup), PSS and RSS are read. Then each launcher is stopped by its pid (SIGTERM) and each
          job cancelled by its id.
overhead  --overhead-jobs launchers of the tiny training run one after the other. Per job, from the launcher's and
          the job's own log timestamps (ms):
            launch  launcher process start -> sbatch returned (Python start, imports, pickling, sbatch)
            queue   sbatch returned -> the job's first log line (SLURM's queue wait, dispatch, Python start on the
                    node): excluded from the overhead, as issue 15 asks
            run     the job's first -> last log line
            end     the job's last log line -> the launcher's exit (noticing the end, reading the result, exiting)
          overhead = launch + end; also the issue's own measure, rule time minus the job's accounted time
          (wall - (End - Submit) from sacct, whole seconds).

--pythonpath DIR runs the launchers from another checkout of pae (say, a git worktree of an older commit), for
before/after figures. Figures only; nothing is asserted.

    .venv/bin/python bench/slurm_launcher.py [--jobs 50] [--overhead-jobs 20] [--partition debug]
        [--pythonpath DIR] [--skip-memory] [--skip-overhead]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUBMITTED = re.compile(r"^(\S+ \S+) INFO pae\.launch\.slurm: (?:attempt \d+: )?submitted SLURM job (\d+)", re.M)
SUBMITIT_TIME = re.compile(r"^submitit \w+ \((\S+ \S+)\)", re.M)


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


SPEC = {"model": "ae", "latent_dim": 4, "seed": 0, "arch": "conv", "channels": [8, 16], "hidden": 32, "epochs": 1,
        "batch_size": 50, "lr": 0.001, "weight_decay": 0.0, "precision": "fp32", "channels_last": False}


def _tiny_data(path: Path) -> None:
    import numpy as np

    from pae.data.sources import RawDataset
    from pae.data.store import write_dataset
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, 10, n)  # noqa: E731
    raw = RawDataset(images(300), labels(300), images(100), labels(100), [str(i) for i in range(10)], "synthetic",
                     "bench/slurm_launcher.py noise")
    write_dataset(path, "fashion_mnist", raw, val_size=50, split_seed=0)


def _launcher(args, name: str, folder: Path, log: Path, tmp: Path, extra: str = "") -> subprocess.Popen:
    job = {"name": name, "folder": str(folder), "runtime": 5, "mem_mb": 1000, "threads": 1,
           "slurm_partition": args.partition, "slurm_extra": extra}
    out = tmp / name
    stage = ["train", "--spec", json.dumps(SPEC), "--data", str(tmp / "tiny.h5"), "--model-out",
             str(out / "model.pt"), "--history-out", str(out / "history.json"), "--checkpoint",
             str(out / "ckpt" / "train.pt"), "--device", "cpu"]
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = str(args.pythonpath)
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "pae", "--launcher", "slurm", "--job", json.dumps(job), *stage],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd=args.pythonpath or REPO)


def _memory_kb(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+)", text, re.M).group(1))  # noqa: E731
    return {"private": get("Private_Clean") + get("Private_Dirty"), "pss": get("Pss"), "rss": get("Rss")}


def memory(args, tmp: Path) -> None:
    procs, logs = [], []
    t0 = time.time()
    for i in range(args.jobs):
        logs.append(tmp / f"mem{i}.log")
        procs.append(_launcher(args, f"pae-bench-mem-{i}", tmp / f"mem{i}", logs[-1], tmp, "--begin=now+600"))
    job_ids: dict[int, str] = {}
    deadline = time.time() + 300
    while len(job_ids) < args.jobs and time.time() < deadline:
        for i, log in enumerate(logs):
            if i not in job_ids and (m := SUBMITTED.search(log.read_text())):
                job_ids[i] = m.group(2)
        time.sleep(0.5)
    print(f"{len(job_ids)}/{args.jobs} launchers submitted in {time.time() - t0:.1f} s (started together)")
    time.sleep(5)  # past the first squeue polls: the steady state of a waiting launcher
    mems = [_memory_kb(p.pid) for p in procs if p.poll() is None]
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=120)
    subprocess.run(["scancel", *job_ids.values()], capture_output=True)  # launchers that do not cancel their job
    if not mems:
        print("no launcher was still waiting")
        return
    print(f"\n{len(mems)} waiting launchers (each holding one job in flight):")
    for key in ("private", "pss", "rss"):
        values = [m[key] / 1024 for m in mems]
        print(f"  {key:8s} median {statistics.median(values):7.1f} MB, max {max(values):7.1f} MB, "
              f"total {sum(values):8.1f} MB")


def _sacct(job_id: str) -> dict[str, str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "Submit,Start,End,State"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    return dict(zip(("submit", "start", "end", "state"), out[0].split("|"))) if out else {}


def overhead(args, tmp: Path) -> None:
    rows = []
    for i in range(args.overhead_jobs):
        folder, log = tmp / f"ovh{i}", tmp / f"ovh{i}.log"
        t_start = time.time()
        proc = _launcher(args, f"pae-bench-ovh-{i}", folder, log, tmp)
        proc.wait(timeout=600)
        t_exit = time.time()
        text = log.read_text()
        m = SUBMITTED.search(text)
        if proc.returncode != 0 or not m:
            print(f"job {i}: launcher failed ({proc.returncode}):\n{text[-2000:]}")
            continue
        job_id, t_submitted = m.group(2), _ts(m.group(1))
        job_log = (folder / f"{job_id}_0_log.out").read_text() + (folder / f"{job_id}_0_log.err").read_text()
        stamps = sorted(_ts(s) for s in SUBMITIT_TIME.findall(job_log))
        deadline = time.time() + 30
        while (acct := _sacct(job_id)).get("state") != "COMPLETED" and time.time() < deadline:
            time.sleep(1)
        fmt = "%Y-%m-%dT%H:%M:%S"
        accounted = (datetime.strptime(acct["end"], fmt) - datetime.strptime(acct["submit"], fmt)).total_seconds()
        rows.append({"launch": t_submitted - t_start, "queue": stamps[0] - t_submitted, "run": stamps[-1] - stamps[0],
                     "end": t_exit - stamps[-1], "wall": t_exit - t_start, "issue": t_exit - t_start - accounted})
        r = rows[-1]
        print(f"  job {job_id}: launch {r['launch']:.2f} s, queue {r['queue']:.2f} s, run {r['run']:.2f} s, "
              f"end {r['end']:.2f} s; overhead {r['launch'] + r['end']:.2f} s (wall - accounted: {r['issue']:.0f} s)",
              flush=True)
    if not rows:
        return
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    over = [r["launch"] + r["end"] for r in rows]
    print(f"\n{len(rows)} jobs, medians: launch {med['launch']:.2f} s, queue {med['queue']:.2f} s, run "
          f"{med['run']:.2f} s, end {med['end']:.2f} s, wall {med['wall']:.2f} s")
    print(f"overhead (launch + end, queue excluded): median {statistics.median(over):.2f} s, "
          f"max {max(over):.2f} s; wall - sacct (End - Submit): median {med['issue']:.1f} s (whole-second stamps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=50, help="launchers in flight at once for the memory figure")
    ap.add_argument("--overhead-jobs", type=int, default=20)
    ap.add_argument("--partition", default="debug")
    ap.add_argument("--pythonpath", type=Path, default=None, help="run the launchers from this pae checkout")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    source = args.pythonpath or REPO
    commit = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%h %s"], capture_output=True,
                            text=True).stdout.strip()[:100]
    print(f"pae from {source} ({commit}); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; partition "
          f"{args.partition}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="pae-bench-slurm-") as tmp:
        _tiny_data(Path(tmp) / "tiny.h5")
        if not args.skip_memory:
            memory(args, Path(tmp))
        if not args.skip_overhead:
            print(f"\n{args.overhead_jobs} short jobs (train: 300 images, 1 epoch), one after the other:")
            overhead(args, Path(tmp))


if __name__ == "__main__":
    main()
