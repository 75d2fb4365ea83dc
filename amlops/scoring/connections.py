"""Clients that stall or flood connections must not keep valid requests from being answered.

The server runs gunicorn's threaded workers (``gthread``, :meth:`ScoringSettings.server_arguments`): a thread per
connection being served, idle connections parked in the worker's poller. The gaps left are closed here from inside
each worker, on the listening sockets gunicorn hands it (so it works the same wherever gunicorn runs, locally
or in Azure ML's container, without a server configuration file):

- a client that sends half a request, or stops reading its answer, holds its thread for as long as it likes:
  ``SO_RCVTIMEO`` and ``SO_SNDTIMEO`` (inherited by every accepted connection) end such a read or write after
  ``client_timeout_seconds``;
- every new connection costs a thread until its first bytes arrive (gunicorn waits up to 5 s for them): the
  kernel holds a connection that has sent nothing (``TCP_DEFER_ACCEPT``, Linux), and the thread waits only
  :data:`FIRST_BYTES_WAIT` before parking it in the poller;
- closing a connection, gunicorn 26's threaded worker lingers up to 2 s for the client to close its side, on the
  worker's main thread, which accepts every connection: 40 clients that never close stopped the worker for
  80 s. It lingers :data:`CLOSE_LINGER` instead;
- stopping, the same worker waits for its idle keep-alive connections to end, but sleeps in its poller for the
  whole graceful timeout (30 s) instead of until the first of them expires (gunicorn's keep-alive: 2 s): one
  client holding a connection open made every stop take 30 s, or the SIGKILL of whoever stopped it. Its
  stopping loop wakes when the next idle connection expires (:func:`_wait_for_idle_connections`), so a client
  that keeps sending is answered (``Connection: close``) until then, and the worker exits within the keep-alive.

The last three set values or methods of gunicorn's own modules (``gunicorn.workers.gthread``'s
``DEFAULT_WORKER_DATA_TIMEOUT`` and ``ThreadWorker.wait_for_and_dispatch_events``, ``gunicorn.util.close_graceful``'s
timeout), in the worker that imported them: ``tests/test_hostile_clients.py`` fails if a gunicorn upgrade changes
what they do.

Standard library only: this module is shipped to endpoints with :mod:`amlops.scoring`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import stat
import struct
import sys
import time
from pathlib import Path

from amlops.core.settings import ScoringSettings

#: A child of the inference server's logger: its lines go to the server's log.
log = logging.getLogger("azmlinfsrv.connections")

#: Seconds a gthread worker thread waits for a new connection's first bytes before parking it in the poller.
FIRST_BYTES_WAIT = 0.05
#: Seconds gunicorn lingers, closing a connection, for the client to close its side (gunicorn's default: 2).
CLOSE_LINGER = 0.05


def listening_sockets() -> list[socket.socket]:
    """The TCP sockets this process listens on (a gunicorn worker inherits its server's), as new objects."""
    folder = Path("/proc/self/fd") if Path("/proc/self/fd").is_dir() else Path("/dev/fd")
    found = []
    for name in os.listdir(folder):
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            candidate = socket.socket(fileno=os.dup(int(name)))
        except (OSError, ValueError):
            continue
        if (
            candidate.family in (socket.AF_INET, socket.AF_INET6)
            and candidate.type == socket.SOCK_STREAM
            and candidate.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ):
            found.append(candidate)
        else:
            candidate.close()
    return found


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    micro = int((seconds - whole) * 1_000_000)
    return struct.pack("ll", whole, micro) if sys.platform.startswith("linux") else struct.pack("qi4x", whole, micro)


def _wait_for_idle_connections(wait):
    """``ThreadWorker.wait_for_and_dispatch_events``, waking a stopping worker when an idle connection expires.

    Idle connections wait in two queues ordered by their deadline (kept alive after an answer; accepted, no byte
    yet); the stopping loop closes the expired ones after each wait, and exits when none is left.
    """

    @functools.wraps(wait)
    def wait_while_stopping(worker, timeout):
        if not worker.alive:
            queues = (getattr(worker, "keepalived_conns", ()), getattr(worker, "pending_conns", ()))
            deadlines = [queue[0].timeout for queue in queues if queue]
            if deadlines:
                timeout = min(timeout, max(min(deadlines) - time.monotonic(), 0.0))
        return wait(worker, timeout)

    wait_while_stopping.amlops_idle = True  # type: ignore[attr-defined]
    return wait_while_stopping


def protect(settings: ScoringSettings | None = None) -> int:
    """Bound how long a client may hold a connection, on every listening socket of this process.

    Returns:
        How many listening sockets were set (0 outside a server, as in a test that calls ``init()`` directly).
    """
    timeout = (settings or ScoringSettings()).client_timeout_seconds
    listeners = listening_sockets()
    for listener in listeners:
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))
            if hasattr(socket, "TCP_DEFER_ACCEPT"):
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, round(timeout)))
        except OSError as error:
            log.warning("client timeouts not set on %s: %s", listener.getsockname(), error)
        finally:
            listener.close()  # the duplicate; the server's own descriptor stays open
    threaded = sys.modules.get("gunicorn.workers.gthread")
    if threaded is not None and hasattr(threaded, "DEFAULT_WORKER_DATA_TIMEOUT"):
        threaded.DEFAULT_WORKER_DATA_TIMEOUT = FIRST_BYTES_WAIT
    worker = getattr(threaded, "ThreadWorker", None)
    wait = getattr(worker, "wait_for_and_dispatch_events", None)
    if wait is not None and not getattr(wait, "amlops_idle", False):
        worker.wait_for_and_dispatch_events = _wait_for_idle_connections(wait)
    utilities = sys.modules.get("gunicorn.util")
    close = getattr(utilities, "close_graceful", None)
    if close is not None and not getattr(close, "amlops_linger", None):
        shortened = functools.partial(close, timeout=CLOSE_LINGER)
        shortened.amlops_linger = CLOSE_LINGER  # type: ignore[attr-defined]
        utilities.close_graceful = shortened
    if listeners:
        log.info("clients: %d listener(s) end a stalled read or write after %g s", len(listeners), timeout)
    return len(listeners)
