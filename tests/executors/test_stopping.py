"""The one escalation every executor uses: SIGINT, SIGTERM, then SIGKILL, each after a bounded wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlpipe.executors.stopping import Stopper

IGNORES_INT_AND_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: print('INT', flush=True))\n"
    "signal.signal(signal.SIGTERM, lambda *a: print('TERM', flush=True))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
    "time.sleep(60)\n"
)


def stopper_for(process: subprocess.Popen[str], *, timeout_s: float | None) -> Stopper:
    def ended(timeout: float | None) -> bool:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    return Stopper(send=lambda sig: os.kill(process.pid, sig), ended=ended, timeout_s=timeout_s, grace_s=0.3)


def start() -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", IGNORES_INT_AND_TERM], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_a_step_past_its_timeout_gets_int_then_term_then_kill() -> None:
    process = start()
    stopper = stopper_for(process, timeout_s=0.2)
    stopper.wait()
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert process.stdout is not None and process.stdout.read() == "INT\nTERM\n"
    assert (stopper.timed_out, stopper.cancelled) == (True, False)
    assert stopper.timeout_error() == f"timed out after {0.2 / 60:g} minutes"


def test_a_cancelled_step_that_ends_on_int_gets_nothing_more() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    stopper = stopper_for(process, timeout_s=None)
    stopper.cancel()
    stopper.cancel()  # a second cancel does nothing
    stopper.wait()
    assert process.wait(timeout=10) in {-signal.SIGINT, 1}  # ended by its KeyboardInterrupt, not killed
    assert (stopper.timed_out, stopper.cancelled, stopper.timeout_error()) == (False, True, None)
