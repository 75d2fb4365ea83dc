"""The local real-time endpoint: gunicorn running the Azure ML inference server app on loopback.

``azmlinfsrv`` always binds 0.0.0.0, so the project runs gunicorn itself with the server's WSGI app and
an explicit host, which is 127.0.0.1 unless the deployment config says otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from amlops.core.deployment_config import LocalDeploymentConfig
from amlops.core.errors import AmlopsError
from amlops.core.names import LOCAL_ENDPOINT
from amlops.core.processes import signal_group, stop_process_group
from amlops.serving.stage import StagedDeployment

log = logging.getLogger(__name__)

SERVER_APP = "azureml_inference_server_http.server.entry:app"


class EndpointError(AmlopsError, RuntimeError):
    """The local endpoint could not be started or did not become healthy."""


@dataclass(frozen=True)
class EndpointState:
    """What is recorded about a running local endpoint (``build/endpoints/<name>.json``)."""

    name: str
    pid: int
    url: str
    scoring_uri: str
    swagger_uri: str
    model_name: str
    model_version: str
    deployment_dir: str
    log_file: str
    started_at: float
    #: A second port only this server listens on: health checks and smoke tests of a new server reach it
    #: while an old one still shares the public port (``SO_REUSEPORT``) during a release.
    direct_url: str = ""


def exposure_warning(host: str) -> str | None:
    """Why binding ``host`` exposes the endpoint beyond this machine, or ``None`` for a loopback address."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        return f"binds {host!r}, a host name that may resolve to a public interface; use 127.0.0.1"
    return (
        f"binds {host}: it is reachable from other machines, without authentication; "
        "bind 127.0.0.1 unless it sits behind an authenticating proxy"
    )


def port_is_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host`` by a socket that does not share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class LocalEndpoint:
    """Start, health-check and stop one local inference server.

    Use as a context manager to guarantee the server is stopped::

        with LocalEndpoint(staged, config, state_dir) as endpoint:
            requests.post(endpoint.state.scoring_uri, json={"data": [...]})
    """

    def __init__(
        self,
        staged: StagedDeployment,
        config: LocalDeploymentConfig,
        state_dir: Path,
        name: str = LOCAL_ENDPOINT,
        share_port: bool = False,
    ):
        self.staged = staged
        self.config = config
        self.state_dir = Path(state_dir)
        self.name = name
        self.process: subprocess.Popen | None = None
        self.state: EndpointState | None = None
        self.recorded = False
        #: Only a release replacing the server recorded under the same name may share its public port.
        self.share_port = share_port

    @property
    def state_file(self) -> Path:
        """Where the running endpoint's state is recorded."""
        return self.state_dir / f"{self.name}.json"

    def _address(self, port: int) -> str:
        host = self.config.host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def command(self, port: int, direct_port: int) -> list[str]:
        """The gunicorn command line: the public port (shareable during a release) and a direct port."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            self._address(port),
            "--bind",
            self._address(direct_port),
            "--reuse-port",
            "--workers",
            str(self.config.workers),
            "--timeout",
            str(int(self.config.scoringTimeoutMs / 1000) + 30),
            "--no-control-socket",
            SERVER_APP,
        ]

    def start(self, record: bool = True) -> EndpointState:
        """Start the server and wait until its liveness probe answers (on its direct port).

        Args:
            record: Write the state file now. A release starts the new server unrecorded, verifies it, and
                records it only when it replaces the old one.

        Raises:
            EndpointError: if the process exits or is not healthy within ``startupTimeoutSeconds``.
        """
        host = self.config.host
        warning = exposure_warning(host)
        if warning:
            log.warning("endpoint %s: %s", self.name, warning)
        port = self.config.port or free_port(host)
        if self.config.port and not self.share_port and not port_is_free(host, port):
            raise EndpointError(
                f"endpoint {self.name}: port {port} on {host} is in use (another endpoint? `python -m amlops "
                "endpoints list` shows them, `undeploy --name NAME` stops one); stop it or choose another port"
            )
        direct_port = free_port(host)
        url, direct_url = (f"http://{'[' + host + ']' if ':' in host else host}:{p}" for p in (port, direct_port))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.state_dir / f"{self.name}-{direct_port}.log"  # one per server: a release runs two
        env = (
            os.environ
            | self.staged.environment()
            | {
                "SCORING_TIMEOUT_MS": str(self.config.scoringTimeoutMs),
                "PYTHONPATH": str(self.staged.app_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        with log_file.open("wb") as sink:
            self.process = subprocess.Popen(
                self.command(port, direct_port),
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.staged.app_dir,
                start_new_session=True,
            )
        started = time.time()
        self.state = EndpointState(
            name=self.name,
            pid=self.process.pid,
            url=url,
            scoring_uri=f"{url}/score",
            swagger_uri=f"{url}/swagger.json",
            model_name=self.staged.model_name,
            model_version=self.staged.model_version,
            deployment_dir=str(self.staged.root),
            log_file=str(log_file),
            started_at=started,
            direct_url=direct_url,
        )
        try:
            self._wait_healthy(direct_url, log_file)
        except BaseException:
            self.stop()
            raise
        if record:
            self.record()
        log.info(
            "endpoint %s: %s serving %s v%s (healthy after %.1fs)",
            self.name,
            url,
            self.staged.model_name,
            self.staged.model_version,
            time.time() - started,
        )
        return self.state

    def record(self) -> None:
        """Write the state file: from now on this server is the endpoint ``name``."""
        self.recorded = True
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _wait_healthy(self, url: str, log_file: Path) -> None:
        deadline = time.monotonic() + self.config.startupTimeoutSeconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EndpointError(
                    f"endpoint {self.name} exited with code {self.process.returncode} during "
                    f"start-up; last log lines:\n{tail(log_file)}"
                )
            try:
                if requests.get(url + "/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise EndpointError(
            f"endpoint {self.name} was not healthy after {self.config.startupTimeoutSeconds}s; "
            f"last log lines:\n{tail(log_file)}"
        )

    def answers_publicly(self, timeout: float = 5.0) -> bool:
        """Whether the liveness probe answers on the public port within ``timeout`` seconds.

        After a smoke test passed on the direct port, ``False`` means clients of the public port are holding it,
        not that the server is unhealthy.
        """
        try:
            return requests.get(self.state.url + "/", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Stop the server and everything it started; safe to call twice."""
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("endpoint %s did not stop within 15s; killing it", self.name)
            signal_group(self.process.pid, signal.SIGKILL)  # and any worker left behind
            self.process.wait()
        self.process = None
        if self.recorded:
            self.state_file.unlink(missing_ok=True)
            self.recorded = False

    def __enter__(self) -> LocalEndpoint:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def recorded_state(state_dir: Path, name: str = LOCAL_ENDPOINT) -> EndpointState | None:
    """The state file of endpoint ``name``, whether its server still runs or not; ``None`` without one."""
    path = Path(state_dir) / f"{name}.json"
    return EndpointState(**json.loads(path.read_text())) if path.is_file() else None


def read_state(state_dir: Path, name: str = LOCAL_ENDPOINT) -> EndpointState:
    """The recorded state of a running local endpoint started by another process (a notebook, ``deploy``).

    Raises:
        LookupError: if no such endpoint is recorded, or its process is gone.
    """
    path = Path(state_dir) / f"{name}.json"
    if not path.is_file():
        raise LookupError(f"no local endpoint named {name!r} is running ({path} does not exist); deploy one first")
    state = EndpointState(**json.loads(path.read_text()))
    if not signal_group(state.pid, 0):
        path.unlink(missing_ok=True)
        raise LookupError(f"local endpoint {name!r} (pid {state.pid}) is no longer running; deploy it again")
    return state


def stop_recorded(state_dir: Path, name: str = LOCAL_ENDPOINT) -> bool:
    """Stop a local endpoint recorded in ``state_dir``; ``False`` if none was running."""
    try:
        state = read_state(state_dir, name)
    except LookupError:
        return False
    stop_process_group(state.pid)
    (Path(state_dir) / f"{name}.json").unlink(missing_ok=True)
    log.info("endpoint %s (pid %d) stopped", name, state.pid)
    return True
