"""Load generators: ``wrk`` (C, event loop) when installed, else a multi-process Python client.

Both POST one body over and over to a loopback URL with a fixed number of concurrent connections, for a
bounded time (and, for the Python one, a bounded number of requests), and report requests per second and
latency percentiles. ``wrk`` is the one to trust for throughput: its own cost per request is a few
microseconds, which :func:`generator_ceiling` shows by loading a server that does nothing.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCRIPTS = Path(__file__).resolve().parent / "scripts"
LUA_SCRIPT = SCRIPTS / "post.lua"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cpu_placement() -> tuple[set[int], set[int]]:
    """CPUs for the load generator and for the server: one core for the generator, the rest for the server.

    On a single core both share it. Pinning removes a source of noise: left to the scheduler, a one-worker
    server and ``wrk`` sometimes share a core, and the same load point then measures half the throughput.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


def pin(pids: list[int], cpus: set[int]) -> None:
    """Restrict processes (a server's tree) to ``cpus``; processes that are gone are skipped."""
    for pid in pids:
        try:
            os.sched_setaffinity(pid, cpus)
        except (ProcessLookupError, PermissionError):
            continue


class LoadError(RuntimeError):
    """A load run could not be made or its requests failed."""


@dataclass(frozen=True)
class LoadResult:
    """One load run: what was sent and how the server kept up."""

    generator: str
    clients: int
    requests: int
    seconds: float
    errors: int  # non-2xx answers, timeouts and socket errors together
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def requests_per_second(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        """A JSON-ready dict, with the rate."""
        return asdict(self) | {"requests_per_second": self.requests_per_second}


def check_loopback(url: str) -> None:
    """Refuse any target that is not this machine's loopback interface."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise LoadError(f"refusing to send load to {host!r}: only loopback addresses are benchmarked")


def have_wrk() -> bool:
    """Whether the ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


def run_load(
    generator: str, url: str, body_file: Path, clients: int, seconds: float, max_requests: int | None = None
) -> LoadResult:
    """Load ``url`` with ``clients`` concurrent connections posting ``body_file`` for ``seconds``.

    Args:
        generator: ``wrk`` or ``python``.
        url: A loopback URL.
        body_file: The request body.
        clients: Concurrent connections.
        seconds: Duration of the run.
        max_requests: Stop earlier after this many requests (the Python generator only; wrk runs for a time).
    """
    check_loopback(url)
    if generator == "wrk":
        return wrk_load(url, body_file, clients, seconds)
    if generator == "python":
        return python_load(url, body_file.read_bytes(), clients, seconds, max_requests)
    raise ValueError(f"unknown load generator {generator!r}")


def wrk_load(url: str, body_file: Path, clients: int, seconds: float) -> LoadResult:
    """One ``wrk`` run: one thread, pinned to the generator's core (:func:`cpu_placement`)."""
    duration = max(1, round(seconds))
    generator_cpus, _ = cpu_placement()
    command = [
        "wrk",
        "--threads",
        "1",
        "--connections",
        str(clients),
        "--duration",
        f"{duration}s",
        "--timeout",
        "10s",
        "--script",
        str(LUA_SCRIPT),
        url,
    ]
    finished = subprocess.run(
        command,
        env=os.environ | {"BENCH_BODY": str(body_file)},
        preexec_fn=lambda: os.sched_setaffinity(0, generator_cpus),
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=False,
    )
    line = next((x for x in finished.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if finished.returncode != 0 or line is None:
        raise LoadError(f"wrk failed ({finished.returncode}): {finished.stdout[-500:]} {finished.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(raw[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return LoadResult(
        generator="wrk",
        clients=clients,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
    )


# --- the Python generator -------------------------------------------------------------------------------


def _client_thread(
    host: str, port: int, path: str, body: bytes, deadline: float, budget: int, out: list, errors: list
) -> None:
    headers = {"Content-Type": "application/json"}
    connection = None
    for _ in range(budget):
        if time.perf_counter() >= deadline:
            break
        started = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            ok = 200 <= response.status < 300
            if response.will_close:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException):
            ok = False
            if connection is not None:
                connection.close()
            connection = None
        out.append(time.perf_counter() - started)
        if not ok:
            errors.append(1)
    if connection is not None:
        connection.close()


def _client_process(args: tuple) -> tuple[list[float], int, float]:
    host, port, path, body, threads, seconds, budget = args
    out: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    workers = [
        threading.Thread(target=_client_thread, args=(host, port, path, body, deadline, budget, out, errors))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return out, len(errors), time.perf_counter() - started


def python_load(url: str, body: bytes, clients: int, seconds: float, max_requests: int | None = None) -> LoadResult:
    """Load with ``clients`` blocking HTTP clients spread over up to one process per core.

    Each client sends at most ``max_requests / clients`` requests (at least one) and stops at ``seconds``.
    """
    parts = urlsplit(url)
    processes = max(1, min(clients, os.cpu_count() or 1))
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    budget = max(1, (max_requests or 10**9) // clients)
    jobs = [(parts.hostname, parts.port, parts.path or "/", body, n, seconds, budget) for n in per_process]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        answers = pool.map(_client_process, jobs)
    latencies = sorted(x for out, _, _ in answers for x in out)
    errors = sum(e for _, e, _ in answers)
    elapsed = max(t for _, _, t in answers)
    if not latencies:
        raise LoadError(f"no request was sent to {url}")

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return LoadResult(
        generator="python",
        clients=clients,
        requests=len(latencies),
        seconds=elapsed,
        errors=errors,
        p50_ms=percentile(50),
        p90_ms=percentile(90),
        p99_ms=percentile(99),
        mean_ms=sum(latencies) / len(latencies) * 1000,
    )


# --- the generator's ceiling ----------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TrivialServer:
    """A server that does nothing (:mod:`bench.trivial`), to measure what the load generator can send."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/score"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> TrivialServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.trivial", str(self.port)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.02)
        self.__exit__()
        raise LoadError("the trivial server did not start")

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
