"""Clients that stall or flood connections never keep valid requests from being answered.

The real endpoint (gunicorn's threaded workers running the inference server and ``score.py``) with clients that
send half a request and wait, that connect and send nothing, and that never read a large answer. Behaviour only:
every valid request is answered, correctly, and the server lets go of the stalled connections; no timing is
asserted (the request timeout below only turns a hang into a failure).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from amlops.core.deployment_config import LocalDeploymentConfig
from amlops.core.settings import ScoringSettings
from amlops.serving.local import LocalEndpoint
from amlops.serving.stage import StagedDeployment
from tests.support.project import FEATURES

pytestmark = pytest.mark.integration

#: Seconds a stalled client may hold its connection, here (10 by default): short, so the test sees it let go.
CLIENT_TIMEOUT = 2.0
#: More stalled clients than a worker has threads: some of them wait for a thread, as valid requests may.
STALLED = 40
IDLE = 300


@pytest.fixture(scope="module")
def endpoint(staged: StagedDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    limits = ScoringSettings(client_timeout_seconds=CLIENT_TIMEOUT)
    served = LocalEndpoint(
        dataclasses.replace(staged, limits=limits),
        LocalDeploymentConfig(computeType="local", port=0),
        tmp_path_factory.mktemp("endpoints"),
    )
    served.start()
    yield served
    served.stop()


def _address(endpoint: LocalEndpoint) -> tuple[str, int]:
    host, port = endpoint.state.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _valid_requests(endpoint: LocalEndpoint, expected, count: int = 20) -> None:
    rows, predictions = expected
    for _ in range(count):
        answer = requests.post(endpoint.state.scoring_uri, json={"data": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["predictions"], predictions, rtol=1e-9)


def _half_requests(endpoint: LocalEndpoint, count: int) -> list[socket.socket]:
    """Clients that send the headers and part of the body they announced, then wait."""
    held = []
    for _ in range(count):
        client = socket.create_connection(_address(endpoint))
        client.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 4096\r\n\r\n{"data": [[1'
        )
        held.append(client)
    return held


def _let_go(clients: list[socket.socket], within: float) -> int:
    """How many of ``clients`` the server has closed (or answered and closed) within ``within`` seconds."""
    deadline, closed = time.monotonic() + within, 0
    for client in clients:
        client.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            while client.recv(65536):
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except OSError:
            pass
        finally:
            client.close()
    return closed


def test_valid_requests_are_answered_while_clients_stall_half_way(endpoint: LocalEndpoint, expected):
    stalled = _half_requests(endpoint, STALLED)
    try:
        _valid_requests(endpoint, expected)
    finally:
        assert _let_go(stalled, within=CLIENT_TIMEOUT * 5) == STALLED  # none kept its connection


def test_valid_requests_are_answered_during_an_idle_connection_flood(endpoint: LocalEndpoint, expected):
    idle = [socket.create_connection(_address(endpoint)) for _ in range(IDLE)]
    try:
        _valid_requests(endpoint, expected)
        time.sleep(CLIENT_TIMEOUT + 1)  # past the kernel's hold: the idle connections now reach the server
        _valid_requests(endpoint, expected)
    finally:
        for client in idle:
            client.close()


def test_a_client_that_never_reads_its_answer_is_let_go(endpoint: LocalEndpoint, expected, table: pd.DataFrame):
    rows = table[list(FEATURES)].to_numpy(dtype=np.float64).tolist() * 20  # an answer larger than socket buffers
    body = json.dumps({"data": rows}).encode()
    readers = []
    for _ in range(8):
        client = socket.create_connection(_address(endpoint))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        readers.append(client)
    try:
        _valid_requests(endpoint, expected)
    finally:
        for client in readers:
            client.close()


def test_the_server_runs_threaded_workers_with_the_client_limits(endpoint: LocalEndpoint):
    environment = endpoint.staged.environment()
    assert environment["GUNICORN_CMD_ARGS"] == "--worker-class gthread --threads 32"
    assert environment["AMLOPS_SCORING_CLIENT_TIMEOUT_SECONDS"] == str(CLIENT_TIMEOUT)
    log = Path(endpoint.state.log_file).read_text()
    assert "Using worker: gthread" in log
    assert "end a stalled read or write after 2 s" in log


def test_a_client_keeping_its_connection_open_does_not_hold_up_a_stop(
    staged: StagedDeployment, tmp_path: Path, expected
):
    served = LocalEndpoint(staged, LocalDeploymentConfig(computeType="local", port=0), tmp_path / "state", name="held")
    served.start()
    server = served.process
    try:
        with requests.Session() as client:  # keeps its connection open, idle, after the answer
            assert client.post(served.state.scoring_uri, json={"data": expected[0]}, timeout=30).status_code == 200
            served.stop()
    finally:
        served.stop()
    # gunicorn ended by itself on SIGTERM, after the idle connection's keep-alive: stop() SIGKILLs a server that
    # has not within 15 s (gunicorn's own graceful timeout is 30 s).
    assert server.returncode == 0
