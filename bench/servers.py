"""The servers under test, each started on 127.0.0.1 with the same worker count.

* ``floor``: the Azure ML inference server (:class:`amlops.serving.local.LocalEndpoint`) with an entry
  script that answers a constant: what the server itself costs.
* ``project``: the same server with this project's ``score.py``, staged as ``make run`` stages it.
* ``naive``: the same server with a typical tutorial ``score.py`` (MLflow load, json → numpy → predict).
* ``mlflow``: ``mlflow models serve --env-manager local`` (uvicorn + FastAPI) on the same model folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amlops.core.deployment_config import LocalDeploymentConfig
from amlops.core.processes import signal_group
from amlops.serving.local import EndpointError, LocalEndpoint, free_port, tail
from amlops.serving.stage import StagedDeployment, stage
from bench.load import cpu_placement, pin

SCRIPTS = Path(__file__).resolve().parent / "scripts"
#: The version the benchmarked model is staged as (its name is the project contract's).
MODEL_VERSION = "1"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Variant:
    """One server to benchmark."""

    key: str
    label: str
    #: Entry script replacing the project's ``score.py``; ``None`` for the project's own or for MLflow.
    script: Path | None = None
    mlflow: bool = False
    #: gunicorn options replacing the project's (``GUNICORN_CMD_ARGS``): how the server ran before.
    server_arguments: str | None = None


VARIANTS = (
    Variant("floor", "constant score.py (floor)", SCRIPTS / "constant_score.py"),
    Variant("project", "this project's score.py"),
    Variant("sync", "this project's score.py, one sync worker (before)", server_arguments="--worker-class sync"),
    Variant("naive", "naive score.py", SCRIPTS / "naive_score.py"),
    Variant("mlflow", "mlflow models serve", mlflow=True),
)


@dataclasses.dataclass(frozen=True)
class _ServerArguments(StagedDeployment):
    """A staged deployment whose server runs with other gunicorn options."""

    server_arguments: str = ""

    def environment(self) -> dict[str, str]:
        return super().environment() | {"GUNICORN_CMD_ARGS": self.server_arguments}


class _TimedEndpoint(LocalEndpoint):
    """:class:`LocalEndpoint` polling its liveness every 10 ms, remembering when it first answered."""

    healthy_at: float | None = None

    def _wait_healthy(self, url: str, log_file: Path) -> None:
        self.healthy_at = wait_for_http(
            HOST, int(url.rsplit(":", 1)[1]), "/", self.process, self.config.startupTimeoutSeconds, log_file
        )


def wait_for_http(host: str, port: int, path: str, process: subprocess.Popen, timeout: float, log: Path) -> float:
    """Poll ``GET path`` until it answers 200; return ``time.perf_counter()`` at that answer.

    Raises:
        EndpointError: if the process exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"server exited with code {process.returncode}; last log lines:\n{tail(log)}")
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.perf_counter()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.01)
    raise EndpointError(f"server not healthy after {timeout}s; last log lines:\n{tail(log)}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from ``/proc/<pid>/task/*/children``."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: the leaves of the process tree (gunicorn's and uvicorn's workers)."""
    tree = process_tree(pid)
    parents = set()
    for member in tree:
        try:
            parents.add(int(Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return [member for member in tree if member not in parents]


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (from ``status``) and ``Pss`` (from ``smaps_rollup``) of one process, in KiB."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                values["rss"] = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["pss"] = int(line.split()[1])
    except OSError:
        pass
    return values


class Server:
    """A started server: its scoring URL, its cold start and its memory."""

    def __init__(self, variant: Variant, workers: int, model_folder: Path, work: Path, project_root: Path):
        self.variant = variant
        self.workers = workers
        self.model_folder = model_folder
        self.work = work
        self.project_root = project_root
        self.url = ""
        self.cold_start_seconds = float("nan")
        self._endpoint: _TimedEndpoint | None = None
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The server's root process."""
        return self._endpoint.process.pid if self._endpoint else self._process.pid

    def start(self) -> None:
        """Start the server, measure process start → first healthy liveness answer, pin it to its CPUs."""
        if self.variant.mlflow:
            self._start_mlflow()
        else:
            self._start_azure()
        pin(process_tree(self.pid), cpu_placement()[1])

    def _start_azure(self) -> None:
        from amlops.core import contract
        from amlops.core.config import load_inference_config

        inference = load_inference_config(self.project_root / "inferenceConfig.yml")
        staged: StagedDeployment = stage(
            self.model_folder,
            contract.in_root(self.project_root).name,
            MODEL_VERSION,
            inference,
            self.project_root,
            self.work / "deploy" / self.variant.key,
        )
        if self.variant.script is not None:
            shutil.copy2(self.variant.script, staged.app_dir / staged.entry_script)
        if self.variant.server_arguments is not None:
            fields = {f.name: getattr(staged, f.name) for f in dataclasses.fields(staged)}
            staged = _ServerArguments(**fields, server_arguments=self.variant.server_arguments)
        config = LocalDeploymentConfig(computeType="local", host=HOST, port=0, workers=self.workers)
        self._endpoint = _TimedEndpoint(staged, config, self.work / "endpoints", name=f"bench-{self.variant.key}")
        started = time.perf_counter()
        state = self._endpoint.start()
        self.cold_start_seconds = self._endpoint.healthy_at - started
        self.url = state.scoring_uri

    def _start_mlflow(self) -> None:
        bin_dir = Path(sys.executable).parent
        port = free_port(HOST)
        log = self.work / "endpoints" / "bench-mlflow.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        command = [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "--model-uri",
            str(self.model_folder),
            "--env-manager",
            "local",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(self.workers),
        ]
        started = time.perf_counter()
        with log.open("wb") as sink:
            self._process = subprocess.Popen(
                command,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.work,
                start_new_session=True,
            )  # fmt: skip
        try:
            healthy_at = wait_for_http(HOST, port, "/ping", self._process, 120, log)
        except BaseException:
            self.stop()
            raise
        self.cold_start_seconds = healthy_at - started
        self.url = f"http://{HOST}:{port}/invocations"

    def memory(self) -> dict:
        """Memory of the worker processes and of the whole process tree, in MiB."""
        workers = worker_pids(self.pid)
        per_worker = [memory_kib(pid) for pid in workers]
        tree = [memory_kib(pid) for pid in process_tree(self.pid)]
        worker_rss = sum(m.get("rss", 0) for m in per_worker) / 1024
        return {
            "workers": len(workers),
            "worker_rss_mib": worker_rss,
            "rss_per_worker_mib": worker_rss / max(1, len(workers)),
            "pss_per_worker_mib": sum(m.get("pss", 0) for m in per_worker) / 1024 / max(1, len(workers)),
            "tree_rss_mib": sum(m.get("rss", 0) for m in tree) / 1024,
        }

    def stop(self) -> None:
        """Stop the server and every process it started."""
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        if self._process is not None:
            signal_group(self._process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=15)
            signal_group(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
