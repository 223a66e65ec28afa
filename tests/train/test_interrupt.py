"""Stop signals: a training records them and checkpoints at a step; run in-process, it gives the signals back to
the caller's handlers when it ends (a Ctrl-C after it interrupts the caller as before)."""
from __future__ import annotations

import json
import signal

from pae.stages.train import train_stage
from pae.train import interrupt

from tests.helpers import TRAIN_SPEC


def test_an_in_process_training_gives_the_stop_signals_back(synthetic_h5, tmp_path):
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    spec = {**TRAIN_SPEC, "epochs": 1}
    train_stage(json.loads(json.dumps(spec)), synthetic_h5, tmp_path / "model.pt", tmp_path / "history.json",
                tmp_path / "ckpt" / "train.pt", "cpu")
    assert (tmp_path / "model.pt").exists()
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # pytest's Ctrl-C still works


def test_install_routes_the_signals_to_the_request_flag_and_restore_undoes_it():
    previous = interrupt.install()
    try:
        assert interrupt.requested() == 0
        signal.raise_signal(signal.SIGHUP)  # recorded, not acted on: the loop checks at its next step
        assert interrupt.requested() == signal.SIGHUP
    finally:
        interrupt.restore(previous)
    assert signal.getsignal(signal.SIGHUP) == previous[signal.SIGHUP] and interrupt.requested() == 0
