"""The SLURM launcher on a real cluster (cluster/local-slurm/), at the scale of a real grid: a waiting launcher holds
no torch and cancels its job when stopped; a request the partition can never satisfy fails at once; jobs held by a
drained node are named on snakemake's terminal; a scancel is reported with its cause and snakemake's retry does not
undo it; a rerun after snakemake was killed attaches to the job
still running instead of submitting another, and the rule's log history keeps every attempt. Needs the cluster
(PAE_SLURM=1), as tests/cluster/conftest.py says."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import pae.config
from pae.launch.slurm import RECORD
from pae.stages.install_profile import install_profile
from tests.helpers import REPO, TINY_CONFIG, TINY_RUN, as_from_a_terminal, epochs_lasting

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def _state(job_id: str, env) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                         env=env, timeout=60).stdout.split("\n")
    return out[0].strip()


def _final_state(job_id: str, env, timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    while (state := _state(job_id, env)).split(" ")[0] in ("", "PENDING", "RUNNING", "COMPLETING", "REQUEUED") \
            and time.time() < deadline:
        time.sleep(1)
    return state


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def _launcher(job: dict, argv: list[str], env, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pae", "--launcher", "slurm", "--job", json.dumps(job), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, **kw)


def test_a_waiting_launcher_holds_no_torch_logs_its_pending_reason_and_cancels_its_job_when_stopped(slurm_env,
                                                                                                      tmp_path):
    folder = tmp_path / "submitit"
    job = {"name": "pae-test-wait", "folder": str(folder), "runtime": 5, "mem_mb": 500, "slurm_partition": "debug",
           "slurm_extra": "--begin=now+600"}  # pends for 10 minutes (reason BeginTime)
    proc = _launcher(job, ["check-config", "configs/demo.yaml"], slurm_env)
    record = _wait_for(lambda: _record(folder), 60, "the launcher's record of its job")
    job_id = str(record["job_id"])
    assert record["launcher"]["pid"] == proc.pid
    _wait_for(lambda: "BeginTime" in subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%r"], capture_output=True,
                                                    text=True, env=slurm_env).stdout, 60, "reason BeginTime")
    time.sleep(3)  # the launcher asks squeue 1 s after submitting, then at doubling intervals
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "libtorch" not in maps and "numpy" not in maps, "the waiting launcher loaded torch or numpy"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"SLURM job {job_id} pending (reason: BeginTime)" in err
    assert f"stopped by SIGTERM: SLURM job {job_id} cancelled" in err
    assert _final_state(job_id, slurm_env).startswith("CANCELLED")
    assert _record(folder) is None


@pytest.mark.parametrize("resources, reason, asks", [
    ({"threads": 64}, "PartitionConfig", "64 CPU(s) per task"),
    ({"nodes": 2}, "Partition(?:NodeLimit|Config)", "2 node(s) x 1 task(s)"),  # SLURM versions name it either way
])
def test_a_request_the_partition_can_never_satisfy_fails_at_once(slurm_env, tmp_path, resources, reason, asks):
    job = {"name": "pae-test-never", "folder": str(tmp_path), "runtime": 5, "mem_mb": 500,
           "slurm_partition": "debug", **resources}
    t0 = time.time()
    proc = _launcher(job, ["check-config", "configs/demo.yaml"], slurm_env)
    _, err = proc.communicate(timeout=120)
    print(f"failed after {time.time() - t0:.1f} s")
    assert proc.returncode == 1
    match = re.search(rf"ERROR pae: SLURM job (\d+) \(pae-test-never\) can never start: pending reason {reason}\. "
                      rf"It asks for ([^;]*); partition debug offers 1 node\(s\) with (\d+) CPUs", err)
    assert match, err[-3000:]
    assert asks in match.group(2) and "500 MB per node" in match.group(2)
    assert "The job was cancelled" in err
    assert _final_state(match.group(1), slurm_env).startswith("CANCELLED")


TRAIN_THREADS = 1


def _tiny_training_workflow(tmp_path: Path, epochs: int) -> tuple[list[str], str, Path, Path]:
    """(snakemake command, target, the train rule's job folder, its log) of the tiny config's run trained for
    `epochs`, through the SLURM profile installed by install-profile on the test cluster: partition debug, 1 GB and
    TRAIN_THREADS CPU per job, so that the training and a data preparation run side by side on a 2-CPU node (with the
    training fitted to the node's 2 CPUs, whichever job SLURM starts first would hold the other back)."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["train"].update(epochs=epochs, batch_size=50)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    rules = yaml.safe_load((REPO / "cluster" / "slurm" / "config.yaml").read_text())["set-resources"]
    install_profile("profile", folder=tmp_path, force=True, cluster=True,
                    default_resources=["slurm_partition=debug", "mem_mb=1000"],
                    set_resources=[f"{rule}:mem_mb=1000" for rule in rules])
    profile = tmp_path / "profile" / "config.yaml"
    settings = yaml.safe_load(profile.read_text())
    settings.setdefault("set-threads", {})["train"] = TRAIN_THREADS
    profile.write_text(yaml.safe_dump(settings))
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile",
           str(config_file), "--profile", str(tmp_path / "profile")]
    return (cmd, f"results/tiny/{TINY_RUN}/model/model.pt", work / "logs" / "submitit" / "tiny" / f"train-{TINY_RUN}",
            work / "logs" / "tiny" / TINY_RUN / "train.log")


def _tiny_epochs_lasting(seconds: float, tmp_path: Path) -> int:
    """Epochs of the tiny run's training (as _tiny_training_workflow sets it up in `tmp_path`) that take about
    `seconds` here on the job's TRAIN_THREADS threads: its data prepared by a local snakemake run in the workflow's
    folder (the SLURM run then starts at the training), then a short timed training on it
    (tests.helpers.epochs_lasting)."""
    cmd, *_ = _tiny_training_workflow(tmp_path, epochs=2)
    config = pae.config.load(tmp_path / "config.yaml")
    run = pae.config.runs(config)[TINY_RUN]
    data = pae.config.run_paths(config, run)["data"]
    local = cmd[:cmd.index("--profile")]
    proc = subprocess.run([*local, "--cores", "1", data], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return epochs_lasting(seconds, tmp_path / "work" / data, pae.config.train_spec(run), tmp_path / "timing",
                          threads=TRAIN_THREADS)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_ctrl_c_stops_snakemake_and_cancels_the_running_job(slurm_env, fashion_mnist_dir, tmp_path):
    """Ctrl-C: SIGINT to snakemake's process group (its jobs' launchers are in it): the SLURM job is cancelled."""
    cmd, target, folder, rule_log = _tiny_training_workflow(tmp_path, epochs=200)
    proc = subprocess.Popen(as_from_a_terminal([*cmd, target]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=slurm_env, start_new_session=True)  # its own process group, as a terminal gives it
    try:
        record = _wait_for(lambda: _record(folder), 300, "the train job's record")
        job_id = str(record["job_id"])
        _wait_for(lambda: "RUNNING" in subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                                                      text=True, env=slurm_env).stdout, 120, "the job to run")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # the group snakemake leads: the pgid this test started
        proc.wait(timeout=120)
    assert _final_state(job_id, slurm_env).startswith("CANCELLED")
    _wait_for(lambda: _gone(record["launcher"]["pid"]), 60, "the launcher to exit")
    attempts = rule_log.with_name(rule_log.name + ".attempts").read_text()
    assert f"stopped by SIGINT: cancelling SLURM job {job_id}" in attempts, attempts[-2000:]


def test_a_rerun_after_snakemake_was_killed_attaches_to_the_running_job(slurm_env, fashion_mnist_dir, tmp_path):
    """snakemake is SIGKILLed while training runs on SLURM (its launcher lives on); after --unlock, the rerun's
    launcher finds the job in the rule's record, attaches to it, and tells the old launcher to stop waiting: one
    training job in all, and the rule's log history (LOG.attempts) keeps both runs. The training is sized to about 45
    s of this CPU's time, longer than killing, unlocking and rerunning take."""
    epochs = _tiny_epochs_lasting(45, tmp_path)
    cmd, target, folder, rule_log = _tiny_training_workflow(tmp_path, epochs)
    work = tmp_path / "work"
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    first = subprocess.Popen([*cmd, target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slurm_env)
    try:
        record = _wait_for(lambda: _record(folder), 300, "the train job's record")
        job_id = str(record["job_id"])
        _wait_for(lambda: f"epoch 2/{epochs}" in rule_log.read_text(), 300, "the training's second epoch")
    finally:
        first.kill()  # SIGKILL: snakemake goes, its launcher lives on
        first.wait(timeout=60)
    old_launcher = record["launcher"]["pid"]
    os.kill(old_launcher, 0)  # still alive, still waiting
    subprocess.run([*cmd, "--unlock"], capture_output=True, env=slurm_env, timeout=300, check=True)
    rerun = subprocess.run([*cmd, target], capture_output=True, text=True, env=slurm_env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = rule_log.read_text()
    assert f"attaching to SLURM job {job_id}" in log, log[-3000:]
    _wait_for(lambda: _gone(old_launcher), 60, "the old launcher to exit")
    # snakemake deleted the log before the rerun; the .attempts file beside it keeps both runs, each with its header
    attempts = rule_log.with_name(rule_log.name + ".attempts").read_text()
    sections = attempts.split("INFO pae: ==== attempt 1 of pae-train-")
    assert len(sections) == 3, attempts[-3000:]
    assert f"submitted SLURM job {job_id}" in sections[1] and f"epoch 2/{epochs}" in sections[1]
    assert f"attaching to SLURM job {job_id}" in sections[2] and "finished successfully" in sections[2]
    assert f"a rerun of the rule attached to SLURM job {job_id}; this launcher stops waiting" in attempts
    rows = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "--name", f"pae-train-{TINY_RUN}", "-o",
                           "JobID,WorkDir"], capture_output=True, text=True, env=slurm_env, timeout=60).stdout
    jobs = [line.split("|")[0] for line in rows.splitlines() if line.endswith(f"|{work}")]  # this test's jobs
    assert jobs == [job_id], rows
    assert (work / target).exists()


def test_bad_stage_arguments_fail_in_the_job_with_the_usage_message(slurm_env, tmp_path):
    """The login side no longer parses the stage's arguments (that would import the stage's code and torch): the job
    does, and the rule fails with argparse's own message."""
    job = {"name": "pae-test-args", "folder": str(tmp_path), "runtime": 5, "mem_mb": 500, "slurm_partition": "debug"}
    proc = _launcher(job, ["check-config", "configs/demo.yaml", "--bogus"], slurm_env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert re.search(r"ERROR pae: SLURM job \d+ \(pae-test-args\) ended in state FAILED", err), err[-3000:]
    assert "pae check-config: bad arguments (exit status 2)" in err
    assert "unrecognized arguments: --bogus" in err


DRAIN_REASON = "pae test: node drained"


@pytest.fixture(scope="module")
def held_then_cancelled(slurm_env, fashion_mnist_dir, tmp_path_factory):
    """One snakemake run through the SLURM profile (retries: 1) of the tiny run's training and MNIST's preparation,
    as a user lives it: node vm (partition debug) drained, so both jobs wait; the node resumed once the terminal has
    said why they wait; the training scancelled once it runs; snakemake's retry of the rule. Then a new snakemake
    run. Returns what the tests below look at."""
    tmp_path = tmp_path_factory.mktemp("held")
    epochs = _tiny_epochs_lasting(120, tmp_path)  # still running when the terminal has said that no job waits
    cmd, target, folder, rule_log = _tiny_training_workflow(tmp_path, epochs)
    config = pae.config.load(tmp_path / "config.yaml")
    mnist = pae.config.workflow_paths(config)["data"].replace("{data_key}", pae.config.data_key(config, "mnist"))
    work = tmp_path / "work"
    terminal = tmp_path / "terminal.txt"
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    scontrol = ["scontrol", "update", "nodename=vm"]
    subprocess.run([*scontrol, "state=drain", f"reason={DRAIN_REASON}"], env=slurm_env, check=True, timeout=60)
    drained = True
    try:
        with open(terminal, "w") as out:
            t0 = time.time()
            proc = subprocess.Popen([*cmd, target, mnist], stdout=out, stderr=subprocess.STDOUT, env=slurm_env)
            try:
                _wait_for(lambda: "SLURM job" in terminal.read_text() and "waiting" in terminal.read_text(), 150,
                          "the terminal to say that the jobs wait")
                told_after = time.time() - t0
                subprocess.run([*scontrol, "state=resume"], env=slurm_env, check=True, timeout=60)
                drained = False
                # the watch looks every 30 s: the line that the jobs no longer wait comes at its next look
                _wait_for(lambda: "pae: no SLURM job of this run is waiting now" in terminal.read_text(), 120,
                          "the terminal to say that no job waits any more")
                job_id = str(_wait_for(lambda: _record(folder), 60, "the train job's record")["job_id"])
                _wait_for(lambda: f"epoch 2/{epochs}" in rule_log.read_text(), 300, "the training's second epoch")
                subprocess.run(["scancel", job_id], env=slurm_env, check=True, timeout=60)
                proc.wait(timeout=300)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        if drained:
            subprocess.run([*scontrol, "state=resume"], env=slurm_env, timeout=60)
    attempts = rule_log.with_name(rule_log.name + ".attempts").read_text()
    rows = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "-o", "JobID,JobName,State,WorkDir"],
                          capture_output=True, text=True, env=slurm_env, timeout=60, check=True).stdout
    jobs = [line.split("|")[:3] for line in rows.splitlines() if line.endswith(f"|{work}")]  # this test's jobs
    checkpoint = work / pae.config.run_paths(config, pae.config.runs(config)[TINY_RUN])["checkpoint"]
    cancelled_with_checkpoint = checkpoint.exists()
    rerun = subprocess.run([*cmd, target], capture_output=True, text=True, env=slurm_env, timeout=900)
    return {"returncode": proc.returncode, "terminal": terminal.read_text(), "told_after": told_after,
            "job_id": job_id, "attempts": attempts, "jobs": jobs, "epochs": epochs, "rerun": rerun, "work": work,
            "target": target, "rule_log": rule_log, "checkpoint": cancelled_with_checkpoint}


def test_the_terminal_says_within_two_minutes_that_jobs_wait_for_a_drained_node(held_then_cancelled):
    """squeue gives the reason (a drained node) to the first job only; the terminal gets one line naming both jobs,
    the reason in words and the drained node with SLURM's reason for it, then one line when they no longer wait."""
    run = held_then_cancelled
    lines = [line for line in run["terminal"].splitlines() if line.startswith("pae: ")]
    print("\n".join(lines), f"\n(told after {run['told_after']:.0f} s)")
    assert run["told_after"] < 120
    waiting = [line for line in lines if "SLURM job" in line and "waiting." in line]
    assert waiting, run["terminal"][-3000:]
    first = waiting[0]
    assert first.startswith("pae: 2 SLURM jobs of this run waiting. "), first
    assert "because a node they need is down, drained or reserved (ReqNodeNotAvail): pae-" in first, first
    assert f"pae-train-{TINY_RUN} (" in first and "pae-prepare-mnist-" in first, first
    assert f"Unavailable nodes: vm drained: {DRAIN_REASON}." in first, first
    assert lines.count("pae: no SLURM job of this run is waiting now") == 1, lines
    assert len(waiting) <= 2, f"one line per change, not per look: {lines}"


def test_a_scancel_stays_cancelled_through_snakemakes_retry_and_a_new_run_resumes(held_then_cancelled):
    """scancel of the running training: the rule fails with the cause on the terminal; snakemake's retry (attempt 2)
    submits nothing; LOG.attempts heads the two attempts 1 and 2; a new snakemake run submits it again and resumes."""
    run = held_then_cancelled
    job_id, terminal = run["job_id"], run["terminal"]
    assert run["returncode"] != 0
    names = sorted(name.split("-")[1] for _, name, _ in run["jobs"])
    assert names == ["prepare", "train"], f"one train job, none on the retry: {run['jobs']}"
    assert [state for i, _, state in run["jobs"] if i == job_id][0].startswith("CANCELLED")
    cause = re.search(rf"^error in rule train: SLURM job {job_id} \(pae-train-{TINY_RUN}\) ended in state CANCELLED"
                      rf"[^:]*: SLURM job {job_id} was cancelled: stopped by SIGTERM at (epoch \d+/{run['epochs']}, "
                      rf"batch \d+/\d+);.* a rerun resumes from it \(its log: \S+\)$", terminal, flags=re.M)
    errors = "\n".join(line for line in terminal.splitlines() if line.startswith("error in rule"))
    assert cause, errors or terminal[-4000:]
    retry = rf"^error in rule train: not resubmitting pae-train-{TINY_RUN} on snakemake's retry \(attempt 2\): "
    assert re.search(retry + rf"the previous attempt's SLURM job {job_id} was CANCELLED", terminal, flags=re.M), \
        errors or terminal[-4000:]
    headers = re.findall(rf"==== attempt (\d+) of pae-train-{TINY_RUN} ", run["attempts"])
    assert headers == ["1", "2"], run["attempts"][-3000:]
    assert run["checkpoint"], "a cancelled training stops with its checkpoint"
    rerun = run["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = run["rule_log"].read_text()
    submitted = re.findall(r"attempt 1: submitted SLURM job (\d+)", log)
    assert len(submitted) == 1 and submitted[0] != job_id, log[-3000:]
    assert re.search(rf"resuming from \S+ at {cause.group(1)}$", log, flags=re.M), "where the cancel stopped it"
    assert (run["work"] / run["target"]).exists()
