"""`make test` prepares the data `make demo` would (make data: `python -m pae setup-data`), and whatever the
tests still skip names the one command that enables it (pytest -ra lists the reasons at the end of the run)."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from pae.data import sources
from tests.helpers import REPO, require_real_data, run_pae

# What a skip reason must contain to name a command that enables the test.
COMMANDS = ("sudo ", "pip install", "make ", "PAE_SLURM=1")


def fake_debian_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in sources.IDX_STEMS:
        (folder / f"{stem}.gz").write_bytes(b"")


@pytest.fixture
def debian(tmp_path, monkeypatch):
    """Debian's Fashion-MNIST folder moved to tmp_path, and apt-get recorded instead of run."""
    folder = tmp_path / "fashion-mnist"
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", folder)
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[:2] == ["apt-get", "install"]:
            fake_debian_folder(folder)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", run)
    monkeypatch.setattr(sources.shutil, "which", lambda name: f"/usr/bin/{name}")
    return folder, calls


def test_found(debian, monkeypatch):
    folder, calls = debian
    fake_debian_folder(folder)
    monkeypatch.setattr(sources.os, "geteuid", lambda: 0)
    said = []
    assert sources.setup_fashion_mnist(said.append) == "found"
    assert calls == [] and str(folder) in said[0]


def test_installs_as_root_with_apt_get(debian, monkeypatch):
    folder, calls = debian
    monkeypatch.setattr(sources.os, "geteuid", lambda: 0)
    said = []
    assert sources.setup_fashion_mnist(said.append) == "installed"
    assert calls[0][:4] == ["apt-get", "install", "-y", "-q"] and calls[0][-1] == "dataset-fashion-mnist"
    assert sources.debian_fashion_mnist_found(folder) and "installed" in said[0]


def test_apt_get_failure_is_reported_and_carries_on(debian, monkeypatch):
    folder, calls = debian
    monkeypatch.setattr(sources.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sources.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 100, "", "E: no net"))
    said = []
    assert sources.setup_fashion_mnist(said.append) == "failed"
    assert ["apt-get", "update", "-q"] in calls and "E: no net" in said[0]


@pytest.mark.parametrize("root, apt", [(False, True), (True, False)])
def test_prints_the_command_otherwise(debian, monkeypatch, root, apt):
    folder, calls = debian
    monkeypatch.setattr(sources.os, "geteuid", lambda: 0 if root else 1000)
    if not apt:
        monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    said = []
    assert sources.setup_fashion_mnist(said.append) == "missing"
    assert calls == [] and "sudo apt-get install dataset-fashion-mnist" in said[0]


def test_setup_data_command():
    """`make data` runs this; it never fails (missing data is reported, not an error)."""
    proc = run_pae("setup-data")
    assert "Fashion-MNIST: " in proc.stdout and "MNIST: " in proc.stdout


def test_make_test_and_demo_depend_on_data():
    out = subprocess.run(["make", "-n", "-p", "test"], cwd=REPO, capture_output=True, text=True).stdout
    rules = {line.split(":")[0]: line.split(":", 1)[1].split() for line in out.splitlines()
             if line.split(":")[0] in ("test", "demo", "data") and ":" in line and not line.startswith("#")}
    assert "data" in rules["test"] and "data" in rules["demo"] and "venv" in rules["data"]


def test_require_real_data_names_the_command(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="to run this test: sudo apt-get install x"):
        require_real_data("X", "sudo apt-get install x")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="sudo apt-get install x"):
        require_real_data("X", "sudo apt-get install x")


def _text(node: ast.AST | None) -> str:
    """The literal text of a string or f-string (placeholders left out); '' for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    if isinstance(node, ast.Name):  # a constant of the test module, or one imported from pae.data.sources
        return _constants.get(node.id) or str(getattr(sources, node.id, ""))
    return ""


_constants: dict[str, str] = {}


def skip_sites() -> list[tuple[str, int, str, str]]:
    """Every place in tests/ that skips a test: (file, line, kind, literal text of its reason or command)."""
    sites = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        _constants.clear()
        for node in ast.walk(tree):  # module-level string constants, e.g. SLURM_SKIP
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                _constants[node.targets[0].id] = _text(node.value)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            kw = {k.arg: k.value for k in node.keywords}
            rel = str(path.relative_to(REPO))
            if name in ("skip", "skipif", "importorskip", "xfail"):
                if rel == "tests/helpers.py":
                    continue  # require_real_data: tested above, its callers below
                pos = {"skip": 0, "importorskip": 2}.get(name)
                reason = kw.get("reason", node.args[pos] if pos is not None and len(node.args) > pos else None)
                sites.append((rel, node.lineno, name, _text(reason)))
            elif name == "require_real_data":
                command = kw.get("command", node.args[1] if len(node.args) > 1 else None)
                sites.append((rel, node.lineno, name, _text(command)))
    return sites


def test_every_skip_reason_names_a_command():
    sites = skip_sites()
    assert {s[0] for s in sites} >= {"tests/conftest.py", "tests/cluster/conftest.py", "tests/test_io.py"}
    bad = [f"{f}:{line} {kind}: {text!r}" for f, line, kind, text in sites if not any(c in text for c in COMMANDS)]
    assert not bad, "skips that do not name the command enabling the test:\n" + "\n".join(bad)


def test_fashion_mnist_skip_names_the_apt_command():
    assert sources.FASHION_MNIST_INSTALL == "sudo apt-get install dataset-fashion-mnist"
