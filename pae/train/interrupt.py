"""Stop requests for long stages: SLURM's pre-timeout signal (USR2 through submitit), SIGTERM from a scheduler or
snakemake, Ctrl-C (SIGINT) and a closed terminal (SIGHUP) reaching a local run's process group. A handler only
records the request; the training loop looks at step boundaries, writes its checkpoint there (a consistent state,
unlike one taken inside a signal handler mid-step) and raises `Interrupted`, which the launcher turns into a requeue
(SLURM) or a clean exit.
"""
from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_requested: list[int] = []


class Interrupted(Exception):
    def __init__(self, signum: int, where: str):
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}; the checkpoint holds the state")
        self.signum = signum


def _record(signum, frame) -> None:
    _requested.append(signum)


def not_ignored(signals) -> list[int]:
    """The `signals` this process does not ignore. One it was started ignoring stays ignored, as a shell leaves it:
    `nohup` (SIGHUP) and a script's background job (SIGINT) mean the run goes on when the terminal closes or Ctrl-C
    reaches the foreground."""
    return [s for s in signals if signal.getsignal(s) is not signal.SIG_IGN]


def install(signals=SIGNALS) -> dict[int, object]:
    """Route `signals` (those `not_ignored`) to the request flag; returns the previous handlers (submitit's, for the
    requeue)."""
    _requested.clear()
    previous = {}
    for s in not_ignored(signals):
        previous[s] = signal.getsignal(s)
        signal.signal(s, _record)
    return previous


def restore(previous: dict[int, object]) -> None:
    """Give the signals back to the handlers `install` returned (a stage run in-process leaves the caller's own) and
    forget any request."""
    for s, handler in previous.items():
        signal.signal(s, handler)
    _requested.clear()


def requested(synchronise: bool = False) -> int:
    """The signal asked for (0 if none). With `synchronise`, all ranks agree (max over ranks: one collective call)."""
    signum = _requested[0] if _requested else 0
    if not synchronise:
        return signum
    import torch  # here, not at the top: every stage imports this module, the light ones too

    from pae.train import distributed
    if distributed.is_distributed():
        flag = torch.tensor([signum], dtype=torch.int64, device=distributed.collective_device())
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signum = int(flag.item())
    return signum
