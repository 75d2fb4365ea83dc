"""The scoring fast paths (docs/performance.md) give exactly what the general paths give.

* :class:`LinearPipeline` (the skops file read without scikit-learn) predicts what the estimator predicts.
* The simdjson parse of a list-of-lists body reads the numbers :func:`json.loads` reads, or steps aside.
* Small batches predicted in plain Python, and large answers serialised by orjson, agree with the rest.
* The request body read in one call under gunicorn is the body ``request.get_data()`` reads.
"""

from __future__ import annotations

import importlib.util
import json
import random
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader
from sklearn.linear_model import Lasso, LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

from amlops.core.settings import ScoringSettings
from amlops.scoring.linear import FOLD_FROM_ROWS, FOLD_TOLERANCE, PYTHON_ROWS, LinearPipeline, read_linear_pipeline
from amlops.scoring.model import load_model
from amlops.scoring.requests import SIMDJSON_FROM_BYTES, _list_body_matrix, parse_rows, request_body
from amlops.scoring.service import SERIALIZE_FROM_ROWS, ScoringService
from tests.support.project import CONTRACT, FEATURES, TARGET
from tests.support.scoring import RECORD, ROW, body, raw_row

TOLERANCE = 1e-9


def random_rows(table: pd.DataFrame, count: int, seed: int = 0) -> np.ndarray:
    """Rows spread over and beyond the snapshot's range, some integral, some far outside it."""
    rng = np.random.default_rng(seed)
    features = table.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    low, high = features.min(axis=0), features.max(axis=0)
    span = high - low
    rows = rng.uniform(low - span, high + span, size=(count, len(FEATURES)))
    rows[: count // 4] = np.round(rows[: count // 4])  # integers, as clients often send
    rows[count // 4 : count // 2] *= rng.choice([1e-3, 1.0, 1e3, 1e6], size=(count // 2 - count // 4, 1))
    return rows


def fitted(estimator, table: pd.DataFrame):
    features = table.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    return estimator.fit(features, table[TARGET].to_numpy(dtype=np.float64))


LINEAR_MODELS = {
    "scaler-ridge": lambda: Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=1.0))]),
    "scaler-ridge-alpha-0.01": lambda: Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=0.01))]),
    "no-mean": lambda: Pipeline([("scale", StandardScaler(with_mean=False)), ("ridge", Ridge())]),
    "no-std": lambda: Pipeline([("scale", StandardScaler(with_std=False)), ("ols", LinearRegression())]),
    "no-intercept": lambda: Pipeline([("scale", StandardScaler()), ("ridge", Ridge(fit_intercept=False))]),
    "two-scalers": lambda: Pipeline([("a", StandardScaler()), ("b", StandardScaler()), ("ridge", Ridge())]),
    "ridge-alone": lambda: Ridge(alpha=0.5),
    "ols-alone": lambda: LinearRegression(),
}


@pytest.mark.parametrize("kind", LINEAR_MODELS)
def test_linear_pipeline_predicts_what_the_estimator_predicts(kind: str, table: pd.DataFrame, tmp_path: Path):
    estimator = fitted(LINEAR_MODELS[kind](), table)
    sio.dump(estimator, tmp_path / "model.skops")
    linear = read_linear_pipeline(tmp_path / "model.skops")
    assert linear is not None
    rows = random_rows(table, 20_000)
    expected = estimator.predict(rows)
    np.testing.assert_allclose(linear.predict(rows), expected, rtol=0, atol=TOLERANCE)
    for start in range(0, 400, 4):  # a few rows at a time, in plain Python
        python = linear.predict_rows(rows[start : start + 4].tolist())
        if python is not None:
            np.testing.assert_allclose(python, expected[start : start + 4], rtol=0, atol=TOLERANCE)


def test_the_project_model_is_served_by_the_fast_path(model_folder: Path, table: pd.DataFrame):
    model = load_model(model_folder, CONTRACT.name, "7")
    assert model.linear is not None
    assert model._estimator is None  # scikit-learn is not even loaded
    rows = random_rows(table, 50_000, seed=1)
    np.testing.assert_allclose(model.linear.predict(rows), model.estimator.predict(rows), rtol=0, atol=TOLERANCE)
    snapshot_rows = table.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    expected = model.estimator.predict(snapshot_rows)
    np.testing.assert_array_equal(model.linear.exact_predict(snapshot_rows), expected)  # the same arithmetic
    np.testing.assert_allclose(model.linear.predict(snapshot_rows), expected, rtol=0, atol=FOLD_TOLERANCE)


def test_the_folded_map_stays_within_its_tolerance_inside_its_bound(model_folder: Path, table: pd.DataFrame):
    model = load_model(model_folder)
    *_, bound = model.linear._folded
    assert bound > table[list(FEATURES)].abs().max().max()  # real rows take the folded map
    rows = np.random.default_rng(3).uniform(-bound, bound, size=(200_000, len(FEATURES)))
    rows[:1000] = np.sign(rows[:1000]) * bound  # the corners, where the rounding bound is reached
    np.testing.assert_allclose(model.linear.predict(rows), model.estimator.predict(rows), rtol=0, atol=FOLD_TOLERANCE)
    outside = rows[:FOLD_FROM_ROWS].copy()
    outside[5, 3] = bound * 1.01  # one value beyond the bound: scikit-learn's own arithmetic for the batch
    np.testing.assert_array_equal(model.linear.predict(outside), model.linear.exact_predict(outside))


def test_predict_rows_steps_aside_for_values_where_the_order_of_summation_could_matter(model_folder: Path):
    linear = load_model(model_folder).linear
    assert linear.predict_rows([ROW]) is not None
    for huge in ([1e300] * len(ROW), [10**400, *ROW[1:]], [float("nan"), *ROW[1:]], [1e12, *ROW[1:]]):
        assert linear.predict_rows([ROW, huge]) is None


@pytest.mark.parametrize(
    "estimator",
    [
        lambda: Pipeline([("poly", PolynomialFeatures(2)), ("ridge", Ridge())]),
        lambda: Pipeline([("scale", StandardScaler()), ("lasso", Lasso(alpha=0.1))]),
    ],
    ids=["polynomial", "lasso"],
)
def test_other_models_are_not_read_as_linear_pipelines(estimator, table: pd.DataFrame, tmp_path: Path):
    sio.dump(fitted(estimator(), table), tmp_path / "model.skops")
    assert read_linear_pipeline(tmp_path / "model.skops") is None


def test_a_model_the_fast_path_does_not_read_is_served_by_scikit_learn(
    model_folder: Path, table: pd.DataFrame, tmp_path: Path
):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    estimator = fitted(Pipeline([("poly", PolynomialFeatures(2)), ("ridge", Ridge())]), table)
    sio.dump(estimator, folder / "model.skops")
    model = load_model(folder, "poly", "1")
    assert model.linear is None
    rows = table.loc[:9, list(FEATURES)].to_numpy(dtype=np.float64)
    status, payload = ScoringService(model).handle(body(rows.tolist()))
    assert status == 200
    np.testing.assert_allclose(payload["predictions"], estimator.predict(rows), rtol=0, atol=TOLERANCE)


def test_read_linear_pipeline_gives_none_for_a_file_that_is_not_skops(tmp_path: Path):
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    assert read_linear_pipeline(tmp_path / "model.skops") is None
    with pytest.raises(FileNotFoundError):
        read_linear_pipeline(tmp_path / "missing.skops")


# --- parsing -------------------------------------------------------------------------------------------


def number_text(value: float, rng: random.Random) -> str:
    """One JSON number written in one of the many ways clients write numbers."""
    style = rng.randrange(8)
    if style == 0:
        return str(round(value))
    if style == 1:
        return repr(value)
    if style == 2:
        return f"{value:.17e}"
    if style == 3:
        return f"{value:E}".replace("E+0", "E+").replace("E-0", "E-")
    if style == 4:
        return f"{value:.25f}"
    if style == 5:
        return str(rng.choice([0, -0, 2**53 + 1, 2**63 - 1, 2**63 + 1, 2**64 - 1, -(2**63)]))
    if style == 6:
        return rng.choice(["-0", "-0.0", "0e0", "1E-400", "4.9e-324", "1.7976931348623157e308", "0." + "3" * 40])
    return f"{value:g}"


def random_body(rng: random.Random, rows: int, width: int = len(FEATURES)) -> bytes:
    space = [" ", "", "\n", "\t", "\r\n  "]
    lines = []
    for _ in range(rows):
        values = [number_text(rng.uniform(-1e3, 1e3), rng) for _ in range(width)]
        lines.append("[" + ("," + rng.choice(space)).join(values) + rng.choice(space) + "]")
    return ('{"data"' + rng.choice(space) + ":" + rng.choice(space) + "[" + ",".join(lines) + "]}").encode()


@pytest.mark.parametrize("seed", range(40))
def test_the_simdjson_path_reads_the_numbers_json_loads_reads(seed: int):
    rng = random.Random(seed)
    raw = random_body(rng, rng.choice([1, 2, 7, 50, 300]))
    fast = _list_body_matrix(raw, len(FEATURES), 10_000)
    expected = np.array(json.loads(raw)["data"], dtype=np.float64)
    assert fast is not None, raw[:200]
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(parse_rows(raw, FEATURES, ScoringSettings()), expected)


#: A row of integers, one per feature, written without spaces.
NUMBERS = ",".join(str(number) for number in range(1, len(FEATURES) + 1))


@pytest.mark.parametrize(
    "raw",
    [
        body([RECORD]),
        raw_row("NaN"),
        raw_row(str(2**64)),
        raw_row("123456789" * 3),
        raw_row("1e400"),
        raw_row("059"),
        raw_row("+59"),
        raw_row(".59"),
        raw_row("true"),
        raw_row('"59"'),
        raw_row("[59]"),
        body([ROW, ROW[:-1]]),
        body([[*ROW[:-1], [ROW[-1]]]]),
        body([]),
        '{"data": [[' + NUMBERS + ']], "data": [[' + NUMBERS + "]]}",
        '{"datae": [[' + NUMBERS + "]]}",
        '{"da ta": [[' + NUMBERS + "]]}",
        '{"data": [[' + NUMBERS + "],]}",
        '{"data": [[' + NUMBERS + "]]} x",
        "\ufeff" + body([ROW]),
    ],
)
def test_the_simdjson_path_steps_aside_for_anything_else(raw: str):
    assert _list_body_matrix(raw.encode("utf-8", "surrogatepass"), len(FEATURES), 10_000) is None


def test_the_worker_threads_share_the_simdjson_path_without_mixing_bodies():
    """The server's threads parse at the same time; each gets its own body's numbers, none steps aside."""
    import sys

    rng = random.Random(11)
    bodies = [random_body(rng, rng.choice([3, 40, 300])) for _ in range(8)]
    expected = [np.array(json.loads(raw)["data"], dtype=np.float64) for raw in bodies]
    wrong: list[str] = []

    def parse_many(index: int) -> None:
        for _ in range(150):
            fast = _list_body_matrix(bodies[index], len(FEATURES), 10_000)
            if fast is None or not np.array_equal(fast, expected[index]):
                wrong.append(f"body {index}: {'stepped aside' if fast is None else 'other numbers'}")

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as the interpreter allows
    try:
        threads = [threading.Thread(target=parse_many, args=(index,)) for index in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert not wrong, wrong[:5]


def test_the_simdjson_path_respects_the_batch_limit():
    raw = body([ROW] * 5).encode()
    assert _list_body_matrix(raw, len(FEATURES), 5) is not None
    assert _list_body_matrix(raw, len(FEATURES), 4) is None


# --- the service ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 2, PYTHON_ROWS, PYTHON_ROWS + 1, SERIALIZE_FROM_ROWS, 100, 1000, 4000])
@pytest.mark.parametrize("form", ["lists", "records", "bytes"])
def test_every_path_of_the_service_gives_the_estimators_predictions(
    model_folder: Path, table: pd.DataFrame, rows: int, form: str
):
    model = load_model(model_folder, CONTRACT.name, "7")
    model.rules = None  # rows far outside the contract's ranges, to compare the arithmetic of every path
    service = ScoringService(model)
    matrix = random_rows(table, rows, seed=rows)
    if form == "records":
        raw = body([dict(zip(FEATURES, row, strict=True)) for row in matrix.tolist()])
    else:
        raw = body(matrix.tolist())
    if form == "bytes":
        raw = raw.encode()
    expected = service.model.estimator.predict(matrix)

    status, payload = service.handle(raw)
    assert status == 200
    np.testing.assert_allclose(payload["predictions"], expected, rtol=0, atol=TOLERANCE)
    assert payload["model"] == {"name": CONTRACT.name, "version": "7"}

    status, answer = service.respond(raw)
    assert status == 200
    assert isinstance(answer, bytes) == (rows >= SERIALIZE_FROM_ROWS)
    document = json.loads(answer) if isinstance(answer, bytes) else answer
    assert document["model"] == payload["model"]
    np.testing.assert_array_equal(document["predictions"], payload["predictions"])


def test_large_list_bodies_take_the_simdjson_path(model_folder: Path):
    raw = body([ROW] * 100)
    assert len(raw) >= SIMDJSON_FROM_BYTES
    assert _list_body_matrix(raw.encode(), len(FEATURES), 10_000) is not None


def test_linear_pipeline_reports_an_overflow_in_the_first_row_that_overflows(model_folder: Path):
    linear = load_model(model_folder).linear
    assert isinstance(linear, LinearPipeline)
    with np.errstate(over="ignore", invalid="ignore"):
        predictions = linear.predict(np.array([ROW, [1.7e308] * len(ROW), ROW]))
    assert np.isfinite(predictions).tolist() == [True, False, True]


def test_entry_script_returns_a_ready_made_json_response_for_large_batches(staged, monkeypatch: pytest.MonkeyPatch):
    for name, value in staged.environment().items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("amlops_fast_entry_script", staged.app_dir / staged.entry_script)
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    entry.init()
    small = entry.run(body([ROW]))
    large = entry.run(body([ROW] * 50))
    assert isinstance(small, dict)
    assert large.status_code == 200
    assert large.mimetype == "application/json"
    document = json.loads(large.get_data())
    assert document["model"] == small["model"]
    np.testing.assert_allclose(document["predictions"], small["predictions"] * 50, rtol=0, atol=TOLERANCE)


# --- the request body under gunicorn --------------------------------------------------------------------


def gunicorn_request(payload: bytes, already_buffered: int = 0, declared: int | None = None) -> Request:
    """A werkzeug request whose ``wsgi.input`` is gunicorn's own ``Body`` reading ``payload`` from a socket.

    ``already_buffered`` bytes sit in gunicorn's read-ahead buffer, as when the body arrives with the headers.
    """
    server, client = socket.socketpair()
    sender = threading.Thread(target=lambda: (client.sendall(payload[already_buffered:]), client.close()))
    sender.start()
    unreader = SocketUnreader(server)
    unreader.unread(payload[:already_buffered])
    length = len(payload) if declared is None else declared
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(length),
        "wsgi.input": Body(LengthReader(unreader, length)),
    }
    request = Request(environ)
    request.sender = sender
    return request


@pytest.mark.parametrize("size", [1, 1023, 1024, 8192, 8193, 64 * 1024 + 7, 1_000_000])
@pytest.mark.parametrize("already_buffered", [0, 1, 500])
def test_request_body_reads_the_whole_body_under_gunicorn_in_one_call(
    size: int, already_buffered: int, monkeypatch: pytest.MonkeyPatch
):
    payload = random.Random(size).randbytes(size)
    request = gunicorn_request(payload, min(already_buffered, size))

    def refuse(*args, **kwargs):
        raise AssertionError("Body.read (1 KB at a time) was used")

    monkeypatch.setattr(Body, "read", refuse)
    assert request_body(request) == payload
    request.sender.join()


def test_request_body_reads_a_short_body_as_what_arrived():
    """A client that sends less than its Content-Length: the bytes that arrived (then a 400 for bad JSON)."""
    request = gunicorn_request(b'{"data": [[1', declared=100)
    assert request_body(request) == b'{"data": [[1'
    request.sender.join()


def test_request_body_leaves_a_partly_read_body_to_werkzeug():
    """Werkzeug's own rule then applies: fewer bytes left than Content-Length is a client that disconnected."""
    request = gunicorn_request(b"0123456789" * 300)
    assert request.environ["wsgi.input"].read(5) == b"01234"
    with pytest.raises(ClientDisconnected):
        request_body(request)
    request.sender.join()


def test_request_body_uses_get_data_for_other_servers_and_chunked_bodies():
    import io

    payload = b'{"data": [[1, 2]]}'
    plain = Request({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(payload)), "wsgi.input": io.BytesIO(payload)})
    assert request_body(plain) == payload
    server, client = socket.socketpair()
    client.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
    client.close()
    chunked = Request(
        {
            "REQUEST_METHOD": "POST",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input_terminated": True,
            "wsgi.input": Body(ChunkedReader(None, SocketUnreader(server))),
        }
    )
    assert request_body(chunked) == payload
