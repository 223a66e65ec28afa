"""The package works when installed from its wheel, without the repository: the config schema and the snakemake
profiles ship inside it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.integration
def test_installed_wheel_validates_a_config_outside_the_repository(tmp_path):
    """Build the wheel from a copy of what the sdist holds (pyproject.toml, README.md, pae/; no workflow/), install it
    into a folder and run `python -m pae check-config` from a fresh interpreter that cannot see the repository: no
    editable install (a venv without the project's .pth files; the project's site-packages only for the
    dependencies, on PYTHONPATH so its .pth files are not run), working directory outside the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "pae", src / "pae", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    # offline: the venv's setuptools builds it (no build isolation), nothing is fetched
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", src,
          "-w", wheels], cwd=tmp_path)
    (wheel,) = wheels.glob("pae-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for profile in ("slurm", "local"):
        assert f"pae/profiles/{profile}/config.yaml" in names, sorted(n for n in names if "profile" in n)
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel],
         cwd=tmp_path)
    shutil.rmtree(src)  # nothing of the copy may be used

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    deps = sysconfig.get_paths()["purelib"]  # the project's venv: torch, jsonschema, ... (its pae is editable)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), deps])
    work = tmp_path / "elsewhere"
    work.mkdir()

    where = _run([python, "-c", "import pae.config; print(pae.config.__file__, pae.config.SCHEMA_PATH)"],
                 cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the installed copy, not the checkout
    assert not any(Path(p).is_relative_to(REPO) for p in where), where

    (work / "tiny.yaml").write_text("experiment: tiny\nmodels: [ae]\nlatent_sizes: [4]\ntrain:\n  epochs: 2\n")
    out = _run([python, "-m", "pae", "check-config", "tiny.yaml"], cwd=work, env=env).stdout
    import yaml
    resolved = yaml.safe_load(out)
    assert resolved["experiment"] == "tiny" and resolved["train"]["epochs"] == 2
    # defaults filled in from the shipped schema
    assert resolved["train"]["lr"] == 0.001 and resolved["train"]["arch"] == "conv"
    assert resolved["flow"]["kind"] == "nsf" and resolved["flow"]["layers"] == 6

    bad = work / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    proc = subprocess.run([str(python), "-m", "pae", "check-config", str(bad)], capture_output=True, text=True,
                          cwd=work, env=env, timeout=300)
    assert proc.returncode == 1 and "train.epochs" in proc.stderr, proc.stderr

    # The packaged profile installed from the wheel, an override merged in (not fitted to a cluster this machine
    # may submit to: --no-sinfo).
    out = _run([python, "-m", "pae", "install-profile", "site2", "--dir", work / "profiles", "--set-resources",
                "train:nodes=2", "--no-sinfo"], cwd=work, env=env).stdout
    profile = yaml.safe_load((work / "profiles" / "site2" / "config.yaml").read_text())
    assert profile["set-resources"]["train"] == {"runtime": 240, "mem_mb": 16000, "nodes": 2}, out
    assert profile["default-resources"]["launcher"] == "'slurm'"
