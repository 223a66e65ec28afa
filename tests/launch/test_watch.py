"""The watch of SLURM's queue on snakemake's terminal (pae/launch/watch.py), with squeue and sinfo's answers given:
a line when what the run's jobs wait for changes, none per look; jobs of other runs and jobs that start at once are
left out. The real cluster's drained node: tests/cluster/test_launcher.py."""
from __future__ import annotations

import io
import json

from pae.launch import watch
from pae.launch.slurm import RECORD

DRAINED = "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions"


def _record(folder, rule, job_id):
    (folder / rule).mkdir(parents=True)
    (folder / rule / RECORD).write_text(json.dumps({"job_id": job_id}))


def test_one_line_per_change_of_what_the_runs_jobs_wait_for(tmp_path, monkeypatch):
    for rule, job_id in [("train-a", "35"), ("train-b", "36"), ("train-c", "37")]:
        _record(tmp_path, rule, job_id)
    queue = {}
    monkeypatch.setattr(watch, "pending_jobs", lambda: dict(queue))
    monkeypatch.setattr(watch, "unavailable_nodes", lambda partitions: ["vm drained: maintenance"]
                        if any(r.startswith(("Nodes", "ReqNode")) for r, _, _ in queue.values()) else [])
    w = watch.QueueWatch(tmp_path, stream=io.StringIO())
    queue.update({"35": (DRAINED, "pae-train-a", "debug"), "36": ("Priority", "pae-train-b", "debug"),
                  "99": ("Priority", "someone-else", "debug")})
    assert w.look() is None, "pending at one look only: it may start at once"
    line = w.look()
    assert line == ("pae: 2 SLURM jobs of this run waiting. 1 because a node they need is down, drained or reserved "
                    "(ReqNodeNotAvail): pae-train-a (35); 1 because they are queued behind jobs of higher priority "
                    "(Priority): pae-train-b (36). Unavailable nodes: vm drained: maintenance."), line
    queue["37"] = ("Priority", "pae-train-c", "debug")
    assert w.look() is None and w.look() is None, "the same reasons: no new line, whatever the count"
    queue.update({i: ("ReqNodeNotAvail, UnavailableNodes:vm", n, p) for i, (_, n, p) in queue.items() if i != "99"})
    line = w.look()
    assert line.startswith("pae: 3 SLURM jobs of this run waiting. 3 because a node they need is down") and \
        line.endswith("(ReqNodeNotAvail): pae-train-a (35), pae-train-b (36), pae-train-c (37). Unavailable nodes: "
                      "vm drained: maintenance."), line
    queue.clear()
    assert w.look() == "pae: no SLURM job of this run is waiting now"
    assert w.look() is None


def test_no_squeue_answer_changes_nothing_and_no_job_asks_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(watch, "pending_jobs", lambda: calls.append(1))
    w = watch.QueueWatch(tmp_path)
    assert w.look() is None and not calls, "no job recorded: squeue is not asked"
    _record(tmp_path, "train-a", "35")
    assert w.look() is None and calls == [1]


def test_reasons_in_words():
    assert watch.gloss("Resources") == "the CPUs, memory or GPUs they ask for are in use (Resources)"
    assert watch.gloss(DRAINED) == watch.gloss("ReqNodeNotAvail, UnavailableNodes:vm")
    assert watch.gloss("WaitingForScheduling") == "of SLURM's reason WaitingForScheduling"
