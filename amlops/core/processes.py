"""Processes this package starts: signalling their groups, stopping them, and unwinding on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def signal_group(pid: int, signum: int) -> bool:
    """Send a signal to a process group; ``False`` when the group is gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True


def unwind_on_sigterm(exception: type[BaseException] = SystemExit) -> None:
    """Make SIGTERM end this process the way Ctrl-C does: ``finally`` blocks run, so the servers it started stop.

    Servers run in their own session (a Ctrl-C in the terminal must not reach a server mid-release), so nothing
    else stops them when the process that started them is terminated: a cancelled CI job, a timeout, ``kill``.
    Entry points call this; ``serve`` replaces it with its own handler. A process forked from this one (a
    ``multiprocessing`` worker, which its pool stops with SIGTERM) gets the default action back as it is forked:
    a Python-level handler there can lose the signal (it arrives just before the worker blocks on the pool's
    queue lock, and the worker waits forever), and the worker would not unwind anything of ours anyway.

    Args:
        exception: Raised with ``128 + signum`` (SystemExit's exit code); pytest's conftest passes KeyboardInterrupt.
    """
    global _sigterm_handler
    owner = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # forked before the at-fork reset ran: die of the signal
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise exception(128 + signum)

    if _sigterm_handler is None:
        os.register_at_fork(after_in_child=_default_sigterm_in_child)
    _sigterm_handler = terminate
    signal.signal(signal.SIGTERM, terminate)


_sigterm_handler: object | None = None  # the handler unwind_on_sigterm installed last


def _default_sigterm_in_child() -> None:
    """At fork: a child gets SIGTERM's default action back if the parent's was ours."""
    if _sigterm_handler is not None and signal.getsignal(signal.SIGTERM) is _sigterm_handler:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_process_group(pid: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM the process group a recorded server leads, then SIGKILL it after ``grace_seconds``.

    The leader may be another process's server or our own child (a notebook kernel or a test started it): an
    exited child stays a zombie, which still counts as alive, so it is reaped here, or stopping it would wait
    out the whole grace period and then SIGKILL a process that had already exited.
    """
    if not signal_group(pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # not our child, or already reaped (by its Popen)
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
