"""Stop signals: a training records them and checkpoints at a step; run in-process, it gives the signals back to
the caller's handlers when it ends (a Ctrl-C after it interrupts the caller as before)."""
from __future__ import annotations

import json
import signal

import pytest

from pae.stages.train import train_stage
from pae.train import interrupt

from tests.helpers import TRAIN_SPEC


def test_an_in_process_training_gives_the_stop_signals_back(synthetic_h5, tmp_path):
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    spec = {**TRAIN_SPEC, "epochs": 1}
    train_stage(json.loads(json.dumps(spec)), synthetic_h5, tmp_path / "model.pt", tmp_path / "history.json",
                tmp_path / "ckpt" / "train.pt", "cpu")
    assert (tmp_path / "model.pt").exists()
    # every handler as it was, SIGINT included: pytest's Ctrl-C still works (SIG_IGN stays SIG_IGN where pytest was
    # started as a background job, which ignores SIGINT)
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


@pytest.fixture
def sighup():
    """SIGHUP with the handler given for the test (pytest may itself run under nohup, which ignores it)."""
    outer = signal.getsignal(signal.SIGHUP)
    yield lambda handler: signal.signal(signal.SIGHUP, handler)
    signal.signal(signal.SIGHUP, outer)


def test_install_routes_the_signals_to_the_request_flag_and_restore_undoes_it(sighup):
    sighup(signal.SIG_DFL)
    previous = interrupt.install()
    try:
        assert interrupt.requested() == 0
        signal.raise_signal(signal.SIGHUP)  # recorded, not acted on: the loop checks at its next step
        assert interrupt.requested() == signal.SIGHUP
    finally:
        interrupt.restore(previous)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL and interrupt.requested() == 0


def test_a_signal_the_process_was_started_ignoring_stays_ignored(sighup):
    """nohup: a closed terminal's SIGHUP must not stop the training."""
    sighup(signal.SIG_IGN)
    previous = interrupt.install()
    try:
        assert signal.SIGHUP not in previous and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.raise_signal(signal.SIGHUP)
        assert interrupt.requested() == 0
    finally:
        interrupt.restore(previous)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
