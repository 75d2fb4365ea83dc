"""Processes this package starts: signalling their groups, stopping them, and unwinding on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
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
    Entry points call this; ``serve`` replaces it with its own handler.

    A process forked from this one (a ``multiprocessing`` worker, which its pool stops with SIGTERM) must die of
    SIGTERM, even one sent before it has run a single instruction: a pool SIGTERMs a worker it forked moments
    before, and waits for it. CPython clears the signals its C-level handler caught as a child starts, so such a
    signal was lost and the pool hung. So SIGTERM is blocked in the forking thread across the fork (the child
    inherits that mask), and the child unblocks it only after restoring the default action: a signal that came in
    between is still pending then, and kills it.

    Args:
        exception: Raised with ``128 + signum`` (SystemExit's exit code); pytest's conftest passes KeyboardInterrupt.
    """
    global _sigterm_handler
    owner = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a fork that ran no at-fork hooks: die of the signal
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise exception(128 + signum)

    if _sigterm_handler is None:
        os.register_at_fork(
            before=_hold_sigterm_for_fork, after_in_parent=_release_sigterm, after_in_child=_default_sigterm_in_child
        )
    _sigterm_handler = terminate
    signal.signal(signal.SIGTERM, terminate)


_sigterm_handler: object | None = None  # the handler unwind_on_sigterm installed last
_fork = threading.local()  # whether this thread blocked SIGTERM for the fork it is making


def _sigterm_is_ours() -> bool:
    return _sigterm_handler is not None and signal.getsignal(signal.SIGTERM) is _sigterm_handler


def _hold_sigterm_for_fork() -> None:
    """Before fork: block SIGTERM in the forking thread, whose signal mask the child inherits."""
    _fork.held = False
    if _sigterm_is_ours():
        _fork.held = signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _release_sigterm() -> None:
    """After fork: unblock SIGTERM if ``_hold_sigterm_for_fork`` blocked it; a pending one is delivered now.

    In the parent, the handler of a SIGTERM that came during the fork then runs inside this at-fork hook, and
    CPython prints its exception instead of raising it. That is no new loss: unblocked, the signal was handled in
    the first Python at-fork hook to run after the fork (``logging`` registers one), with the same outcome.
    """
    if getattr(_fork, "held", False):
        _fork.held = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_sigterm_in_child() -> None:
    """At fork, in the child: the default action back if the parent's was ours, then SIGTERM unblocked."""
    if _sigterm_is_ours():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _release_sigterm()


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
