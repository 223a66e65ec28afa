"""One run per experiment (pae.lock, the workflow's onstart): a second run of an experiment that is running stops
before any job with an error naming the first run, even after snakemake's own locks are gone (issue 33); a dry run
does not take the lock; a lock file left by a run that ended never blocks."""
from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import pae.lock
from pae.data.paths import IDX_STEMS
from pae.io import PaeError
from tests.helpers import REPO

# A process that holds an experiment's lock until its stdin closes (a stand-in for a live run, in the unit tests).
HOLDER = ("import sys, pae.lock; pae.lock.hold(sys.argv[1], 'tiny', command='snakemake --cores 2 holder'); "
          "print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "results")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline() == "held\n"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=30)


def test_a_held_lock_is_refused_naming_its_holder(tmp_path, holder):
    with pytest.raises(PaeError) as e:
        pae.lock.hold(tmp_path / "results", "tiny")
    message = str(e.value)
    assert message.startswith("experiment 'tiny' is already being run by another snakemake: "), message
    assert f"pid {holder.pid} on host {socket.gethostname()}, started " in message, message
    assert f"in {REPO}, command: snakemake --cores 2 holder" in message, message
    assert f"kill {holder.pid} on {socket.gethostname()}" in message, message
    assert str(tmp_path / "results" / "tiny" / ".pae-run.lock") in message, message


def test_the_lock_is_free_once_its_holder_has_ended(tmp_path, holder):
    holder.stdin.close()
    holder.wait(timeout=30)
    path = pae.lock.hold(tmp_path / "results", "tiny", command="snakemake again")
    try:  # the file the ended holder left is taken over and names this process now
        record = json.loads(path.read_text())
        assert (record["pid"], record["command"]) == (os.getpid(), "snakemake again")
    finally:
        pae.lock.release(path)


def test_a_lock_file_naming_a_dead_process_does_not_block(tmp_path):
    path = tmp_path / "results" / "tiny" / ".pae-run.lock"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 999999999, "host": "elsewhere", "started": 0, "command": "snakemake old"}))
    assert pae.lock.hold(tmp_path / "results", "tiny") == path
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        pae.lock.release(path)


def test_a_lock_under_a_file_names_the_folder(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder should be")
    with pytest.raises(PaeError, match=r"cannot write the experiment's lock file .*results/tiny/.pae-run.lock \(Not a "
                                       r"directory\): the folder .*results/tiny must be writable"):
        pae.lock.hold(tmp_path / "results", "tiny")


def test_the_command_is_shown_as_typed():
    main = str(Path(sys.executable).parent.parent / "lib/python3.11/site-packages/snakemake/__main__.py")
    assert pae.lock.command_line([main, "--cores", "2", "--config", "a=b c"]) == "snakemake --cores 2 --config 'a=b c'"
    assert pae.lock.command_line(["/usr/bin/snakemake", "-n"]) == "snakemake -n"
    assert pae.lock.command_line(["/opt/x/__main__.py", "-n"]) == "/opt/x/__main__.py -n"


# ------------------------------------------------------------------------------------ through snakemake, end to end


def broken_idx_config(tmp_path: Path) -> Path:
    """The tiny grid on IDX files whose headers announce more bytes than they hold: the config check passes, the
    prepare job fails within seconds (no training: the test needs runs that start, not runs that finish)."""
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in IDX_STEMS:
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + (1000).to_bytes(4, "big") + b"\0" * 10)
    config = {"experiment": "tiny", "datasets": {"fashion_mnist": {"source": str(folder)}}, "models": ["ae"],
              "latent_sizes": [4], "seeds": [0], "eval": {"ood": {"datasets": []}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1",
            "--configfile", str(configfile), "--until", "prepare", *args]


@pytest.mark.integration
def test_a_second_run_of_a_running_experiment_stops_before_any_job(tmp_path):
    configfile = broken_idx_config(tmp_path)
    lock = tmp_path / "results" / "tiny" / ".pae-run.lock"
    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(snakemake_cmd(tmp_path, configfile), stdout=out, stderr=subprocess.STDOUT)
    try:
        # The first run is live once its onstart has taken the lock (before its first job); it is then frozen
        # (SIGSTOP), so that it stays alive, holding the lock, for as long as the test needs.
        deadline = time.monotonic() + 120
        while (pae.lock._holder_text(lock) or {}).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.out").read_text()
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None, (tmp_path / "first.out").read_text()

        # A dry run in the same directory is allowed: it takes no lock.
        dry = subprocess.run(snakemake_cmd(tmp_path, configfile, "-n"), capture_output=True, text=True, timeout=300)
        assert dry.returncode == 0, dry.stderr[-3000:]
        # snakemake's own locks are gone: `--unlock` (which snakemake's LockException advises) deletes them, and so
        # does any real run in this directory when it ends (snakemake 9 deletes the whole .snakemake/locks). A third
        # run of the experiment then started beside the first in issue 33.
        unlock = subprocess.run(snakemake_cmd(tmp_path, configfile, "--unlock"), capture_output=True, text=True,
                                timeout=300)
        assert unlock.returncode == 0 and not (tmp_path / ".snakemake" / "locks").exists(), unlock.stderr[-3000:]

        started = time.monotonic()
        second = subprocess.run(snakemake_cmd(tmp_path, configfile), capture_output=True, text=True, timeout=300)
        out = second.stdout + second.stderr
        assert second.returncode == 1, out[-3000:]
        assert "error: experiment 'tiny' is already being run by another snakemake: " in out, out[-3000:]
        assert f"pid {first.pid} on host {socket.gethostname()}, started " in out, out[-3000:]
        assert f"command: snakemake -s {REPO / 'Snakefile'} -d {tmp_path}" in out, out[-3000:]
        assert "rule prepare" not in out and "localrule" not in out and "Traceback" not in out, out[-3000:]
        assert json.loads(lock.read_text())["pid"] == first.pid  # the second run left the lock file alone
        print(f"second run refused in {time.monotonic() - started:.1f} s")
    finally:
        os.kill(first.pid, signal.SIGCONT)
        try:
            first.wait(timeout=120)  # its prepare job fails on the broken IDX files
        except subprocess.TimeoutExpired:
            first.terminate()
            first.wait(timeout=60)
    # The first run ended: its lock is free, and the file it left does not block the next run.
    pae.lock.release(pae.lock.hold(tmp_path / "results", "tiny"))
