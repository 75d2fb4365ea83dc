"""Hostile clients: valid single-row requests while other clients misbehave, for the servers that face them.

Four scenarios, one after the other on the same server, each measuring ``requests`` valid requests sent one after
another (a new connection each, as a new client would come):

* ``undisturbed``: nothing else happens;
* ``stalled``: :data:`STALLED` clients have sent the headers and half the body they announced, and wait;
* ``idle``: :data:`IDLE` connections are open and have sent nothing;
* ``worker killed``: the serving worker was killed with SIGKILL; gunicorn starts another. Requests in the gap are
  refused or reset: the time until one is answered again is reported (``recovered_s``), then the requests are
  measured.

A request that gets no answer within :data:`REQUEST_TIMEOUT` seconds, or not a 200, is a failure; after a timeout
the scenario's remaining requests count as failed without being sent (each would wait as long).
"""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import time
from urllib.parse import urlsplit

SCENARIOS = ("undisturbed", "stalled", "idle", "worker killed")
STALLED = 20
IDLE = 300
REQUEST_TIMEOUT = 10.0


def _valid(url: str, body: bytes, count: int, timeout: float = REQUEST_TIMEOUT) -> dict:
    parts = urlsplit(url)
    latencies, failures = [], 0
    for sent in range(count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            connection.request("POST", parts.path, body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
        except TimeoutError:  # starved: the rest would wait as long each, so they count as failed unsent
            failures += count - sent
            break
        except (OSError, http.client.HTTPException):
            failures += 1
        finally:
            connection.close()
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"requests": count, "failures": failures, "p50_ms": quantile(0.5), "p99_ms": quantile(0.99)}


def _stalled(url: str, count: int) -> list[socket.socket]:
    parts = urlsplit(url)
    held = []
    for _ in range(count):
        client = socket.create_connection((parts.hostname, parts.port), timeout=REQUEST_TIMEOUT)
        client.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            "Content-Length: 4096\r\n\r\n".encode()
            + b'{"data": [[1'
        )
        held.append(client)
    return held


def _idle(url: str, count: int) -> list[socket.socket]:
    parts = urlsplit(url)
    return [socket.create_connection((parts.hostname, parts.port), timeout=REQUEST_TIMEOUT) for _ in range(count)]


def measure(url: str, body: bytes, requests: int, worker_pids, timeout: float = REQUEST_TIMEOUT) -> dict[str, dict]:
    """The four scenarios on the server at ``url``; ``worker_pids()`` lists its serving workers.

    ``timeout``: seconds a valid request may wait for its answer (:data:`REQUEST_TIMEOUT`; a smoke run, less).
    """
    results = {"undisturbed": _valid(url, body, requests, timeout)}
    for name, disturb in (("stalled", lambda: _stalled(url, STALLED)), ("idle", lambda: _idle(url, IDLE))):
        held = disturb()
        time.sleep(0.2)
        try:
            results[name] = _valid(url, body, requests, timeout)
        finally:
            for client in held:
                client.close()
        time.sleep(0.5)
    killed_at = time.perf_counter()
    for pid in worker_pids():
        os.kill(pid, signal.SIGKILL)
    while _valid(url, body, 1, timeout)["failures"] and time.perf_counter() - killed_at < 60:
        time.sleep(0.01)  # requests meanwhile are refused or reset: the time until one is answered is measured
    recovered = time.perf_counter() - killed_at
    results["worker killed"] = _valid(url, body, requests, timeout) | {"recovered_s": recovered}
    return results


def metrics(results: dict[str, dict[str, dict]]) -> dict[str, float]:
    """The project's server: p99 with stalled clients and with idle connections over its undisturbed p99.

    Infinite when a valid request failed: the target is then not met, whatever the latencies.
    """
    project = results.get("project")
    if not project:
        return {}
    base = project["undisturbed"]["p99_ms"]
    found = {}
    for scenario in ("stalled", "idle"):
        measured = project[scenario]
        found[f"{scenario}_p99_vs_undisturbed"] = math.inf if measured["failures"] else measured["p99_ms"] / base
    return found


def table(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per scenario, each server's p50 and p99 (ms) and its failed requests."""
    servers = list(results)
    header = ["scenario", *(f"{key} {column}" for key in servers for column in ("p50 ms", "p99 ms", "failed"))]
    rows = []
    for scenario in SCENARIOS:
        cells = [scenario]
        for key in servers:
            measured = results[key].get(scenario, {})
            cells += [f"{measured.get('p50_ms', math.nan):.3g}", f"{measured.get('p99_ms', math.nan):.3g}"]
            cells.append(f"{measured.get('failures', 0)}/{measured.get('requests', 0)}")
        if scenario == "worker killed":
            cells[0] += (
                " (answering again after "
                + ", ".join(f"{results[key][scenario].get('recovered_s', math.nan):.2f} s" for key in servers)
                + ")"
            )
        rows.append(cells)
    return header, rows
