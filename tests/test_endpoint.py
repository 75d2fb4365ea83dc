"""The local endpoint: the real Azure ML inference server under gunicorn, on 127.0.0.1 only."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from amlops.core.deployment_config import LocalDeploymentConfig
from amlops.scoring.service import RESPONSE_NOTICE, SERIALIZE_FROM_ROWS
from amlops.serving.client import ScoringClient
from amlops.serving.local import EndpointError, LocalEndpoint
from amlops.serving.smoke import smoke_test
from amlops.serving.stage import StagedDeployment
from tests.support.project import CONTRACT, FEATURES
from tests.support.scoring import BAD_REQUESTS, ROW, BadRequest, body

pytestmark = pytest.mark.integration

TIMEOUT = 30  # seconds per request; generous, never asserted on


def local_config(**fields) -> LocalDeploymentConfig:
    return LocalDeploymentConfig(computeType="local", port=0, **fields)


@pytest.fixture(scope="module")
def endpoint(staged: StagedDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    """The staged model served on a free loopback port for the whole module."""
    served = LocalEndpoint(staged, local_config(), tmp_path_factory.mktemp("endpoints"))
    served.start()
    yield served
    served.stop()


def port_of(endpoint: LocalEndpoint) -> int:
    return int(endpoint.state.url.rsplit(":", 1)[1])


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def process_group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of TCP sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_liveness(endpoint: LocalEndpoint):
    response = requests.get(endpoint.state.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200


def test_scores_the_first_rows_like_the_model(endpoint: LocalEndpoint, expected):
    rows, predictions = expected
    response = requests.post(endpoint.state.scoring_uri, json={"data": rows}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == {"name": CONTRACT.name, "version": "7"}
    np.testing.assert_allclose(answer["predictions"], predictions, rtol=0, atol=1e-9)

    records = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    response = requests.post(endpoint.state.scoring_uri, json={"data": records}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], predictions, rtol=0, atol=1e-9)


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(
    endpoint: LocalEndpoint, staged: StagedDeployment, expected
):
    limits = staged.limits
    cases = [
        *BAD_REQUESTS,
        BadRequest(
            "oversize-body", '{"data": []}' + " " * limits.max_request_bytes, ("exceeds the limit",), status=413
        ),
        BadRequest(
            "oversize-batch", body([ROW] * (limits.max_batch_rows + 1)), (f"maximum of {limits.max_batch_rows}",)
        ),
    ]
    assert len(cases) >= 20
    problems = []
    with requests.Session() as session:
        for case in cases:
            response = session.post(
                endpoint.state.scoring_uri,
                data=case.body.encode() if isinstance(case.body, str) else case.body,
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT,
            )
            try:
                message = response.json()["message"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"{case.id}: HTTP {response.status_code}, no JSON message: {response.text[:200]}")
                continue
            if response.status_code != case.status:
                problems.append(f"{case.id}: HTTP {response.status_code}, expected {case.status}: {message}")
            missing = [fragment for fragment in case.fragments if fragment.lower() not in message.lower()]
            if missing:
                problems.append(f"{case.id}: message {message!r} lacks {missing}")
    assert not problems, "\n".join(problems)

    rows, predictions = expected
    response = requests.post(endpoint.state.scoring_uri, json={"data": rows}, timeout=TIMEOUT)
    assert response.status_code == 200
    np.testing.assert_allclose(response.json()["predictions"], predictions, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "application/octet-stream", None]
)
def test_other_content_types_are_not_server_errors(endpoint: LocalEndpoint, expected, content_type: str | None):
    rows, predictions = expected
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(
        endpoint.state.scoring_uri, data=json.dumps({"data": rows}).encode(), headers=headers, timeout=TIMEOUT
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        np.testing.assert_allclose(response.json()["predictions"], predictions, rtol=0, atol=1e-9)
    else:
        assert 400 <= response.status_code < 500
        assert response.json()["message"]


def test_text_plain_with_a_json_body_is_scored(endpoint: LocalEndpoint, expected):
    """The server hands the raw body to ``run()`` whatever its Content-Type."""
    rows, predictions = expected
    response = requests.post(
        endpoint.state.scoring_uri,
        data=json.dumps({"data": rows}),
        headers={"Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], predictions, rtol=0, atol=1e-9)


def test_a_large_batch_is_logged_by_its_access_line_alone(endpoint: LocalEndpoint, expected):
    """A ready-made answer would add the server's notice line to every request's access line."""
    rows, _ = expected
    batch = rows * (SERIALIZE_FROM_ROWS // len(rows) + 1)
    response = requests.post(endpoint.state.scoring_uri, json={"data": batch}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(batch) >= SERIALIZE_FROM_ROWS
    log = Path(endpoint.state.log_file).read_text(encoding="utf-8")
    assert "POST /score 200" in log
    assert RESPONSE_NOTICE not in log


def test_swagger2_is_the_document_written_at_staging(endpoint: LocalEndpoint, staged: StagedDeployment):
    response = requests.get(endpoint.state.swagger_uri, timeout=TIMEOUT)
    assert response.status_code == 200
    document = response.json()
    assert document == json.loads((staged.app_dir / "swagger.json").read_text())
    assert document["swagger"] == "2.0"
    assert document["info"]["title"] == CONTRACT.name
    described = document["definitions"]["ServiceInput"]["properties"]["data"]["description"]
    assert all(name in described for name in FEATURES)


def test_openapi3_is_the_document_written_at_staging(endpoint: LocalEndpoint, staged: StagedDeployment):
    response = requests.get(endpoint.state.swagger_uri, params={"version": "3"}, timeout=TIMEOUT)
    assert response.status_code == 200
    document = response.json()
    assert document == json.loads((staged.app_dir / "swagger3.json").read_text())
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == CONTRACT.name
    row_record = document["components"]["schemas"]["ServiceInput"]["properties"]["data"]["items"]["oneOf"][1]
    assert list(row_record["properties"]) == list(FEATURES)


def test_smoke_test_passes(endpoint: LocalEndpoint, model_folder: Path, table: pd.DataFrame):
    rows = table.loc[:4, list(FEATURES)].astype(float)
    result = smoke_test(ScoringClient(endpoint.state.scoring_uri), model_folder, rows, CONTRACT.name, "7")
    assert result.rows == 5
    assert result.max_abs_error <= 1e-9
    assert (result.model_name, result.model_version) == (CONTRACT.name, "7")
    assert result.bad_request_status == 400
    assert f"expected {len(FEATURES)} values" in result.bad_request_message


def test_binds_loopback_only(endpoint: LocalEndpoint):
    port = port_of(endpoint)
    direct = int(endpoint.state.direct_url.rsplit(":", 1)[1])
    assert endpoint.state.url == f"http://127.0.0.1:{port}"
    command = endpoint.command(port, direct)
    binds = [command[i + 1] for i, word in enumerate(command) if word == "--bind"]
    assert binds == [f"127.0.0.1:{port}", f"127.0.0.1:{direct}"]
    cmdline = Path(f"/proc/{endpoint.state.pid}/cmdline")
    if cmdline.exists():  # what actually runs, not only what would be run
        running = cmdline.read_bytes().decode().split("\0")
        assert [running[i + 1] for i, word in enumerate(running) if word == "--bind"] == binds
    if Path("/proc/net/tcp").exists():
        for listening in (port, direct):  # 127.0.0.1, and no IPv6 or wildcard socket
            assert listening_addresses(listening) == {"0100007F"}


def test_lifecycle_state_file_processes_and_port(staged: StagedDeployment, tmp_path: Path):
    served = LocalEndpoint(staged, local_config(), tmp_path / "state", name="lifecycle")
    try:
        state = served.start()
        port = port_of(served)
        recorded = json.loads(served.state_file.read_text())
        assert recorded["pid"] == state.pid
        assert recorded["scoring_uri"] == f"http://127.0.0.1:{port}/score"
        assert (recorded["model_name"], recorded["model_version"]) == (CONTRACT.name, "7")
        assert process_group_alive(state.pid)
        assert port_is_open(port)
    finally:
        served.stop()
    assert not served.state_file.exists()
    assert not process_group_alive(state.pid)
    assert not port_is_open(port)
    served.stop()  # a second stop is harmless


def broken_copy(staged: StagedDeployment, dest: Path) -> StagedDeployment:
    """A copy of the staged deployment whose model file is gone: ``init()`` will raise."""
    shutil.copytree(staged.root, dest)
    broken = dataclasses.replace(staged, root=dest)
    (broken.model_dir / "model" / "model.skops").unlink()
    return broken


def test_start_fails_when_init_fails_and_leaves_nothing_behind(staged: StagedDeployment, tmp_path: Path):
    """``init()`` raising makes the worker exit with code 3, which gunicorn takes as a boot failure and halts.

    ``/`` never answers meanwhile (the app, and so ``init()``, is loaded before the worker accepts requests).
    """
    served = LocalEndpoint(
        broken_copy(staged, tmp_path / "broken"), local_config(startupTimeoutSeconds=20), tmp_path / "state"
    )
    with pytest.raises(EndpointError) as caught:
        served.start()
    message = str(caught.value)
    assert "exited with code" in message  # it died; it did not merely time out
    assert "last log lines" in message
    assert "model.skops" in message  # the cause, from the server log
    assert served.process is None
    assert not served.state_file.exists()
    assert not process_group_alive(served.state.pid)
    assert not port_is_open(port_of(served))


def test_the_client_names_an_endpoint_it_cannot_reach():
    from amlops.serving.client import ScoringError
    from amlops.serving.local import free_port

    url = f"http://127.0.0.1:{free_port('127.0.0.1')}/score"  # nothing listens there
    with pytest.raises(ScoringError, match=r"no answer from .*/score \(ConnectionError, after 1 retries\)") as caught:
        ScoringClient(url, retries=1).score([ROW])
    assert caught.value.status is None


def test_the_client_refuses_an_answer_that_is_not_json():
    import http.server
    import threading

    from amlops.serving.client import ScoringError

    class TextServer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a proxy's login page</html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), TextServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ScoringError, match=r"HTTP 200: the answer from .* is not JSON: .*login page"):
            ScoringClient(f"http://127.0.0.1:{server.server_address[1]}/score").score([ROW])
    finally:
        server.shutdown()
        server.server_close()
