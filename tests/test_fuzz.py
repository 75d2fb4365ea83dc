"""A property-based campaign against the real local endpoint: bad input never gets a 5xx.

Thousands of generated requests (hypothesis, and schemathesis from the endpoint's own OpenAPI document) hit
the real gunicorn + Azure ML inference server running ``score.py`` on 127.0.0.1. Every answer must be a 2xx
for valid input or a 4xx with a JSON ``message``; the server must stay alive and its memory must not grow.
The counts are printed at the end of the run.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlops.core.deployment_config import LocalDeploymentConfig
from amlops.serving.local import LocalEndpoint
from tests.support.project import CONTRACT, FEATURES
from tests.support.scoring import RECORD

pytestmark = pytest.mark.integration

COUNTS: Counter = Counter()
MIN_REQUESTS = 2000
ROW = [float(value) for value in RECORD.values()]  # the shared valid row, every value a float
CAMPAIGN = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same requests on every run: a CI failure reproduces locally
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture(scope="module")
def server(staged, tmp_path_factory):
    endpoint = LocalEndpoint(
        staged, LocalDeploymentConfig(computeType="local", port=0), tmp_path_factory.mktemp("fuzz-state"), name="fuzz"
    )
    endpoint.start()
    session = requests.Session()
    # Warm up: the first requests of each kind allocate caches that are not leaks.
    for body in (json.dumps({"data": [ROW] * 1000}), "{", "x" * 100_000):
        session.post(endpoint.state.scoring_uri, data=body, timeout=30)
    before = sum(_rss_kb(pid) for pid in _workers(endpoint.process.pid))
    yield endpoint, session, before
    endpoint.stop()


def campaign_summary() -> str | None:
    """The campaign's counts, printed at the end of the test run (see ``conftest.pytest_terminal_summary``)."""
    if not COUNTS:
        return None
    by_status = ", ".join(f"{status}: {count}" for status, count in sorted(COUNTS.items()))
    fours = sum(count for status, count in COUNTS.items() if 400 <= status < 500)
    fives = sum(count for status, count in COUNTS.items() if status >= 500)
    return f"fuzz campaign: {sum(COUNTS.values())} requests sent, {fours} 4xx, {fives} 5xx ({by_status})"


def _send(server, body: bytes | str, content_type: str = "application/json") -> requests.Response:
    endpoint, session, _ = server
    answer = session.post(endpoint.state.scoring_uri, data=body, headers={"Content-Type": content_type}, timeout=30)
    COUNTS[answer.status_code] += 1
    assert answer.status_code < 500, f"HTTP {answer.status_code} for {body[:300]!r}: {answer.text[:300]}"
    if answer.status_code >= 400:
        assert isinstance(answer.json().get("message"), str), answer.text[:300]
    return answer


def _is_valid_number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e300


# --- strategies ------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
garbage_cells = st.one_of(
    st.text(max_size=10),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.integers(min_value=10**310, max_value=10**320),
)


@st.composite
def broken_rows(draw):
    """A valid batch with one thing wrong: a cell, a row's length, or a record's keys."""
    rows = [list(ROW) for _ in range(draw(st.integers(1, 5)))]
    target = draw(st.integers(0, len(rows) - 1))
    kind = draw(st.sampled_from(["cell", "short", "long", "missing-key", "extra-key", "row-type"]))
    if kind == "cell":
        rows[target][draw(st.integers(0, len(ROW) - 1))] = draw(garbage_cells)
        return {"data": rows}
    if kind == "short":
        return {"data": [*rows[:target], rows[target][: draw(st.integers(0, len(ROW) - 1))], *rows[target + 1 :]]}
    if kind == "long":
        return {"data": [*rows[:target], rows[target] + [1.0] * draw(st.integers(1, 5)), *rows[target + 1 :]]}
    records = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    if kind == "missing-key":
        del records[target][draw(st.sampled_from(FEATURES))]
    elif kind == "extra-key":
        records[target][draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in FEATURES))] = 1.0
    else:
        records[target] = draw(json_scalars | st.lists(st.integers(), max_size=3))
    return {"data": records}


# --- the campaign ----------------------------------------------------------------------------------------------


@CAMPAIGN
@given(body=st.binary(max_size=3000))
def test_arbitrary_bytes(server, body: bytes):
    _send(server, body)


@CAMPAIGN
@given(document=json_values)
def test_arbitrary_json_documents(server, document):
    _send(server, json.dumps(document, allow_nan=True))


@settings(CAMPAIGN, max_examples=400)
@given(body=broken_rows())
def test_one_thing_wrong_in_an_otherwise_valid_batch(server, body):
    answer = _send(server, json.dumps(body, allow_nan=True))
    assert answer.status_code == 400, answer.text


@CAMPAIGN
@given(cut=st.integers(min_value=0, max_value=len(json.dumps({"data": [ROW, ROW]})) - 1))
def test_truncated_json(server, cut: int):
    answer = _send(server, json.dumps({"data": [ROW, ROW]})[:cut])
    assert answer.status_code == 400


@settings(CAMPAIGN, max_examples=100)
@given(
    content_type=st.sampled_from(
        [
            "text/plain",
            "application/xml",
            "application/octet-stream",
            "application/json; charset=latin-1",
            "multipart/form-data",
            "",
        ]
    ),
    body=st.sampled_from([json.dumps({"data": [ROW]}), "data=1", "\xff\xfe", "<data/>"]),
)
def test_content_types(server, content_type: str, body: str):
    _send(server, body.encode("latin-1"), content_type)


@CAMPAIGN
@given(
    rows=st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=len(FEATURES), max_size=len(FEATURES)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_valid_shapes_with_any_finite_numbers(server, rows):
    """Any finite number: answered, or refused naming the column whose contract rule it breaks."""
    answer = _send(server, json.dumps({"data": rows}))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200:
        assert len(answer.json()["predictions"]) == len(rows)
    else:
        assert re.match(
            r"row \d+, column '\w+': .* (is outside the range|is not one of the categories)", answer.text[13:]
        )


def _inside(column):
    """Values a column's contract rule allows."""
    return st.sampled_from(column.categories) if column.categories else st.floats(*column.range)


@settings(CAMPAIGN, max_examples=100)
@given(
    rows=st.lists(
        st.tuples(
            *(
                st.sampled_from(column.categories) if column.categories else st.floats(*column.range)
                for column in CONTRACT.features
            )
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_values_inside_the_contract_are_answered(server, rows):
    answer = _send(server, json.dumps({"data": [list(row) for row in rows]}))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == len(rows)


def test_schemathesis_from_the_endpoints_own_openapi(server):
    """Positive and negative cases generated from ``/swagger.json?version=3``, the service's own description."""
    import schemathesis
    from schemathesis import GenerationMode

    endpoint, session, _ = server
    spec = session.get(f"{endpoint.state.url}/swagger.json", params={"version": "3"}, timeout=10).json()
    operation = next(
        op.ok() for op in schemathesis.openapi.from_dict(spec).get_all_operations() if op.ok().path == "/score"
    )
    sent = Counter()

    def campaign(mode: GenerationMode, examples: int):
        @settings(CAMPAIGN, max_examples=examples)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            answer = case.call(base_url=endpoint.state.url, session=session, timeout=30)
            COUNTS[answer.status_code] += 1
            sent[mode] += 1
            assert answer.status_code < 500, f"{mode}: HTTP {answer.status_code} for {case.body!r}: {answer.text}"
            if mode == GenerationMode.NEGATIVE:
                assert 400 <= answer.status_code < 500, f"schema-violating body accepted: {case.body!r}"

        return check

    campaign(GenerationMode.POSITIVE, 250)()
    campaign(GenerationMode.NEGATIVE, 350)()
    assert sent[GenerationMode.POSITIVE] > 50
    assert sent[GenerationMode.NEGATIVE] > 50


def test_oversize_batch_and_body(server):
    endpoint, _, _ = server
    limits = endpoint.staged.limits
    assert _send(server, json.dumps({"data": [ROW] * (limits.max_batch_rows + 1)})).status_code == 400
    assert _send(server, " " * (limits.max_request_bytes + 1)).status_code == 413


def test_campaign_size_server_alive_and_memory_flat(server):
    """Runs last in this module: the server survived everything and did not grow."""
    endpoint, session, before = server
    assert sum(COUNTS.values()) >= MIN_REQUESTS, COUNTS
    assert not any(status >= 500 for status in COUNTS)
    assert endpoint.process.poll() is None
    answer = session.post(endpoint.state.scoring_uri, json={"data": [ROW]}, timeout=10)
    assert answer.status_code == 200
    after = sum(_rss_kb(pid) for pid in _workers(endpoint.process.pid))
    growth_mb = (after - before) / 1024
    assert growth_mb < 25, f"worker memory grew by {growth_mb:.1f} MB over the campaign"
