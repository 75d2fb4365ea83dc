"""The scoring contract in-process: request validation, predictions, model loading, specs."""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from amlops.core.settings import ScoringSettings
from amlops.scoring.model import LoadedModel, load_model, model_identity
from amlops.scoring.openapi import openapi_spec, swagger2_spec
from amlops.scoring.requests import RequestError, parse_rows
from amlops.scoring.rules import Rules
from amlops.scoring.service import ScoringService
from tests.support.project import CONTRACT, FEATURES
from tests.support.scoring import BAD_REQUESTS, RECORD, ROW, BadRequest, body, raw_row, with_value


@pytest.fixture(scope="module")
def loaded(model_folder: Path) -> LoadedModel:
    return load_model(model_folder, CONTRACT.name, "7")


@pytest.fixture(scope="module")
def service(loaded: LoadedModel) -> ScoringService:
    return ScoringService(loaded, ScoringSettings())


@pytest.fixture(scope="module")
def unruled(loaded: LoadedModel) -> ScoringService:
    """The model without its contract's rules (as saved before models recorded them): any finite value goes in."""
    bare = copy.copy(loaded)
    bare.rules = None
    return ScoringService(bare, ScoringSettings())


def first_rows(table: pd.DataFrame, count: int = 5) -> np.ndarray:
    return table.loc[: count - 1, list(FEATURES)].to_numpy(dtype=np.float64)


# --- accepted requests ------------------------------------------------------------------------------


def test_model_signature_is_the_feature_order(loaded: LoadedModel):
    assert loaded.features == FEATURES
    assert (loaded.name, loaded.version) == (CONTRACT.name, "7")


def test_list_of_lists_gets_the_estimators_predictions(service: ScoringService, table: pd.DataFrame):
    rows = first_rows(table)
    status, payload = service.handle(body(rows.tolist()))
    assert status == 200
    assert payload["model"] == {"name": CONTRACT.name, "version": "7"}
    np.testing.assert_allclose(payload["predictions"], service.model.estimator.predict(rows), rtol=0, atol=1e-9)
    json.dumps(payload, allow_nan=False)  # the response is strict JSON


def test_list_of_records_in_any_key_order_gets_the_same_predictions(service: ScoringService, table: pd.DataFrame):
    rows = first_rows(table)
    shuffle = random.Random(7).shuffle
    records = []
    for row in rows.tolist():
        items = list(zip(FEATURES, row, strict=True))
        shuffle(items)
        records.append(dict(items))
    assert [list(record) for record in records] != [list(FEATURES)] * len(records)

    status, payload = service.handle(body(records))
    assert status == 200
    np.testing.assert_allclose(payload["predictions"], service.model.estimator.predict(rows), rtol=0, atol=1e-9)
    assert service.handle(body(rows.tolist()))[1] == payload


def test_bytes_body_integers_and_whitespace_are_accepted(service: ScoringService):
    expected = service.model.estimator.predict(np.array([ROW], dtype=np.float64))
    for raw in (
        body([ROW]).encode(),
        "\n  " + body([ROW]) + " \t\n",
        raw_row(*(f"{float(value)}" for value in ROW[:2])),
    ):
        status, payload = service.handle(raw)
        assert status == 200, payload
        np.testing.assert_allclose(payload["predictions"], expected, rtol=0, atol=1e-9)


def test_parse_rows_orders_record_columns_by_the_signature():
    record = dict(reversed(list(RECORD.items())))
    matrix = parse_rows(body([record, RECORD]), FEATURES, ScoringSettings())
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, np.array([ROW, ROW], dtype=np.float64))


# --- refused requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda case: case.id)
def test_bad_request_is_refused_with_a_message_naming_the_problem(service: ScoringService, case: BadRequest):
    status, payload = service.handle(case.body)
    assert status == case.status, payload
    assert set(payload) == {"message"}
    message = payload["message"].lower()
    for fragment in case.fragments:
        assert fragment.lower() in message, payload["message"]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda case: case.id)
def test_parse_rows_raises_request_error(case: BadRequest):
    if case.overflows_in_model:
        assert np.isfinite(parse_rows(case.body, FEATURES, ScoringSettings())).all()
        return
    with pytest.raises(RequestError) as caught:
        parse_rows(case.body, FEATURES, ScoringSettings())
    assert caught.value.status == case.status
    assert str(caught.value) == caught.value.message


#: The last row of each request whose values overflow inside the model.
OVERFLOWING = {case.id: json.loads(case.body)["data"][-1] for case in BAD_REQUESTS if case.overflows_in_model}


@pytest.mark.parametrize("bad_row", [0, 1, 617, 999])
@pytest.mark.parametrize("overflow", ["scaled-value", "prediction"])
def test_overflow_inside_the_model_names_the_first_bad_row(unruled: ScoringService, bad_row: int, overflow: str):
    huge = OVERFLOWING[f"{overflow}-overflows"]
    rows = [ROW] * 1000
    rows[bad_row] = huge
    rows[-1] = huge
    status, payload = unruled.handle(body(rows))
    assert status == 400
    assert payload["message"].startswith(f"row {bad_row}: values are too large")


@pytest.mark.parametrize(
    ("rows", "status", "fragments"),
    [
        (3, 200, ()),
        (4, 400, ("batch of 4 rows", "maximum of 3")),
        (1000, 400, ("batch of 1000 rows", "maximum of 3")),
    ],
    ids=["at-limit", "one-over", "far-over"],
)
def test_batch_row_limit(loaded: LoadedModel, rows: int, status: int, fragments: tuple[str, ...]):
    answer_status, payload = ScoringService(loaded, ScoringSettings(max_batch_rows=3)).handle(body([ROW] * rows))
    assert answer_status == status, payload
    if status == 200:
        assert len(payload["predictions"]) == rows
    for fragment in fragments:
        assert fragment in payload["message"]


def padded_body(size: int) -> str:
    """A valid one-row body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    raw = body([ROW])
    assert len(raw) <= size
    return raw + " " * (size - len(raw))


def multibyte_body(limit: int) -> str:
    """A body of at most ``limit`` characters that is longer than ``limit`` bytes in UTF-8."""
    raw = body([ROW])[:-1] + ', "x": "' + "é" * 30 + '"}'
    assert len(raw) <= limit < len(raw.encode())
    return raw


@pytest.mark.parametrize(
    ("raw", "status", "fragments"),
    [
        (padded_body(100), 200, ()),
        (padded_body(100).encode(), 200, ()),
        (padded_body(101), 413, ("101 bytes", "limit of 100 bytes")),
        (padded_body(101).encode(), 413, ("101 bytes", "limit of 100 bytes")),
        (padded_body(100_000), 413, ("100000 bytes", "limit of 100 bytes")),
        # At most 100 characters but over 100 bytes of UTF-8: the limit is on bytes, not characters.
        (multibyte_body(100), 413, ("limit of 100 bytes",)),
        # Oversize and malformed: the size is checked first.
        ("[" * 101, 413, ("101 bytes",)),
    ],
    ids=["at-limit", "at-limit-bytes", "one-over", "one-over-bytes", "far-over", "multibyte-chars", "malformed"],
)
def test_body_size_limit(loaded: LoadedModel, raw: str | bytes, status: int, fragments: tuple[str, ...]):
    answer_status, payload = ScoringService(loaded, ScoringSettings(max_request_bytes=100)).handle(raw)
    assert answer_status == status, payload
    for fragment in fragments:
        assert fragment in payload["message"]


def test_service_keeps_answering_after_bad_requests(service: ScoringService):
    for case in BAD_REQUESTS:
        service.handle(case.body)
    status, payload = service.handle(body([ROW]))
    assert status == 200
    assert len(payload["predictions"]) == 1


# --- loading the model ------------------------------------------------------------------------------


def copy_model(model_folder: Path, dest: Path) -> Path:
    return Path(shutil.copytree(model_folder, dest))


def test_load_model_finds_the_only_model_folder_inside_a_directory(model_folder: Path, tmp_path: Path):
    copy_model(model_folder, tmp_path / "mounted" / "model")
    loaded = load_model(tmp_path / "mounted", "n", "3")
    assert loaded.features == FEATURES
    assert (loaded.name, loaded.version) == ("n", "3")


def test_load_model_refuses_a_pickled_model(model_folder: Path, tmp_path: Path):
    folder = copy_model(model_folder, tmp_path / "model")
    mlmodel_path = folder / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "pickle"
    mlmodel_path.write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ValueError, match="serialization_format is 'pickle'") as caught:
        load_model(folder)
    assert str(mlmodel_path) in str(caught.value)


def test_load_model_refuses_a_model_without_the_sklearn_flavor(model_folder: Path, tmp_path: Path):
    folder = copy_model(model_folder, tmp_path / "model")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    del mlmodel["flavors"]["sklearn"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ValueError, match="no 'sklearn' flavor"):
        load_model(folder)


def test_load_model_refuses_a_model_without_a_signature(model_folder: Path, tmp_path: Path):
    folder = copy_model(model_folder, tmp_path / "model")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    del mlmodel["signature"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ValueError, match="no usable column signature"):
        load_model(folder)


def test_load_model_refuses_a_folder_without_mlmodel(model_folder: Path, tmp_path: Path):
    folder = copy_model(model_folder, tmp_path / "model")
    (folder / "MLmodel").unlink()
    with pytest.raises(FileNotFoundError, match="MLmodel"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="found 0"):
        load_model(tmp_path / "model")


def test_load_model_refuses_an_ambiguous_folder(model_folder: Path, tmp_path: Path):
    copy_model(model_folder, tmp_path / "two" / "a")
    copy_model(model_folder, tmp_path / "two" / "b")
    with pytest.raises(FileNotFoundError, match="found 2"):
        load_model(tmp_path / "two")


def test_load_model_fails_when_the_model_fileis_missing(model_folder: Path, tmp_path: Path):
    folder = copy_model(model_folder, tmp_path / "model")
    (folder / "model.skops").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.skops"):
        load_model(folder)


@pytest.mark.parametrize("suffix", ["", "/", "/model/.."])
def test_model_identity_reads_the_azure_ml_layout(tmp_path: Path, suffix: str):
    version_dir = tmp_path / "azureml-models" / CONTRACT.name / "7"
    (version_dir / "model").mkdir(parents=True)
    assert model_identity(Path(str(version_dir) + suffix)) == (CONTRACT.name, "7")


def test_service_from_environment_reads_the_staged_model(staged, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(staged.model_dir))
    service = ScoringService.from_environment()
    assert (service.model.name, service.model.version) == (CONTRACT.name, "7")
    assert service.model.features == FEATURES


def test_service_from_environment_needs_a_model_dir(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    with pytest.raises(RuntimeError, match="AZUREML_MODEL_DIR"):
        ScoringService.from_environment()


def test_entry_script_init_and_run(staged, monkeypatch: pytest.MonkeyPatch):
    """``score.py`` as the inference server calls it: ``init()`` once, then ``run(str)``."""
    for name, value in staged.environment().items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("amlops_test_entry_script", staged.app_dir / staged.entry_script)
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    entry.init()

    answer = entry.run(body([ROW]))
    assert answer["model"] == {"name": CONTRACT.name, "version": "7"}
    assert len(answer["predictions"]) == 1

    refused = entry.run(body([[1.0, 2.0]]))
    assert refused.status_code == 400
    assert f"expected {len(FEATURES)} values" in json.loads(refused.get_data())["message"]


# --- the swagger / OpenAPI documents ----------------------------------------------------------------


def spec_documents(model: LoadedModel, limits: ScoringSettings) -> dict[str, tuple[dict, dict]]:
    """Both documents and the request schema inside each."""
    described = (model.features, CONTRACT.name, "7", limits, model.classes, model.rules)
    spec3, spec2 = openapi_spec(*described), swagger2_spec(*described)
    return {
        "openapi3": (spec3, spec3["components"]["schemas"]["ServiceInput"]),
        "swagger2": (spec2, spec2["definitions"]["ServiceInput"]),
    }


@pytest.mark.parametrize("document", ["openapi3", "swagger2"])
def test_spec_example_is_accepted(service: ScoringService, loaded: LoadedModel, document: str):
    spec, request = spec_documents(loaded, service.limits)[document]
    assert spec["info"]["title"] == CONTRACT.name
    assert spec["info"]["version"] == "7"
    matrix = parse_rows(json.dumps(request["example"]), loaded.features, service.limits)
    assert matrix.shape == (1, len(loaded.features))
    assert service.handle(json.dumps(request["example"]))[0] == 200


def test_spec_feature_names_are_the_model_signature(loaded: LoadedModel):
    limits = ScoringSettings(max_batch_rows=17)
    documents = spec_documents(loaded, limits)

    data3 = documents["openapi3"][1]["properties"]["data"]
    row_list, row_record = data3["items"]["oneOf"]
    assert list(row_record["properties"]) == list(loaded.features)
    assert row_record["required"] == list(loaded.features)
    assert row_list["minItems"] == row_list["maxItems"] == len(loaded.features)
    assert row_list["description"].endswith(", ".join(loaded.features))
    assert data3["maxItems"] == 17

    data2 = documents["swagger2"][1]["properties"]["data"]
    assert data2["items"] == row_list
    assert data2["description"].endswith(", ".join(loaded.features))
    assert data2["maxItems"] == 17


@pytest.mark.parametrize(("file", "document"), [("swagger.json", "swagger2"), ("swagger3.json", "openapi3")])
def test_staged_specs_describe_the_staged_model(staged, loaded: LoadedModel, file: str, document: str):
    written = json.loads((staged.app_dir / file).read_text())
    assert written == spec_documents(loaded, staged.limits)[document][0]


def test_openapi_request_schema_agrees_with_the_service(service: ScoringService, loaded: LoadedModel):
    """Bodies the service accepts validate against the published schema; structurally wrong ones do not."""
    jsonschema = pytest.importorskip("jsonschema")
    _, request = spec_documents(loaded, service.limits)["openapi3"]
    validator = jsonschema.Draft7Validator(request)
    for accepted in ([ROW], [RECORD], [RECORD, dict(reversed(list(RECORD.items())))], [ROW] * 3):
        assert service.handle(body(accepted))[0] == 200
        validator.validate({"data": accepted})
    structural = {
        "body-is-list",
        "body-is-null",
        "no-data-field",
        "unknown-top-level-field",
        "data-is-object",
        "empty-batch",
        "too-few-columns",
        "too-many-columns",
        "row-is-string",
        "missing-column",
        "unknown-column",
        "string-value",
        "null-value",
        "true-value",
        "nested-list-value",
        "nested-in-record",
    }
    cases = [case for case in BAD_REQUESTS if case.id in structural]
    assert {case.id for case in cases} == structural
    for case in cases:
        assert not validator.is_valid(json.loads(case.body)), case.id


# --- the contract's rules at the endpoint -----------------------------------------------------------


def test_the_model_folder_carries_the_contract_it_was_trained_under(loaded: LoadedModel):
    assert loaded.rules is not None
    assert loaded.rules.names == FEATURES


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [("grade", 7, "is not one of the categories [1, 2, 3]"), ("width", 1e300, "is outside the range [0, 60]")],
)
def test_a_value_outside_the_contract_is_refused_naming_row_and_column(
    service: ScoringService, column: str, value: float, rule: str
):
    for rows in ([ROW, with_value(column, value)], [ROW] * 40 + [with_value(column, value)]):  # lists and matrix
        status, payload = service.handle(body(rows))
        assert status == 400
        assert payload["message"].startswith(f"row {len(rows) - 1}, column {column!r}: {value:g} {rule}")


def test_a_batch_matrix_is_checked_value_by_value_like_a_few_rows(loaded: LoadedModel):
    """The batch check (whole-matrix passes) finds exactly what the row-by-row check finds, at any batch size."""
    rules = loaded.rules
    inside = np.tile(np.array(ROW, dtype=np.float64), (300, 1))
    assert rules.check_matrix(inside) == []
    for rows in (200, 3, 500, 1):  # the bounds are kept for the largest batch seen: smaller, larger, smaller
        for column in range(len(FEATURES)):
            for value in (-1.0, 4.0, 2.5, 1e6, np.nan, np.inf):
                matrix = np.tile(inside[0], (rows, 1))
                matrix[rows // 2, column] = value
                assert rules.check_matrix(matrix) == rules.check_rows(matrix.tolist()), (rows, column, value)


def test_an_int_column_refuses_a_fraction_in_a_few_rows_and_in_a_batch():
    """As training refuses it (``whole_number``): 3.5 in an int column is not the value the model was trained on."""
    rules = Rules(
        [
            {"name": "size", "range": [0, 10]},
            {"name": "count", "type": "int", "range": [0, 100]},
            {"name": "n", "type": "int"},
        ]
    )
    assert rules.check_rows([[1.5, 3, 4], [2.0, 3.0, -7]]) == []
    assert [v.message for v in rules.check_rows([[1.5, 3.5, 4]])] == [
        "row 0, column 'count': 3.5 is not a whole number (an int column of the training data's contract)"
    ]
    matrix = np.tile(np.array([1.5, 3.0, 4.0]), (50, 1))
    matrix[30, 2], matrix[10, 1] = 2.25, np.inf  # inf is not a value at all: the request checks name it
    assert [(v.row, v.column) for v in rules.check_matrix(matrix)] == [(30, "n")]
    assert rules.check_matrix(matrix) == rules.check_rows(matrix.tolist())
    # The OpenAPI document says so, and its example row keeps the rule.
    request = openapi_spec(rules.names, "m", "1", ScoringSettings(), rules=rules)["components"]["schemas"][
        "ServiceInput"
    ]
    records = request["properties"]["data"]["items"]["oneOf"][1]["properties"]
    assert [records[name]["type"] for name in rules.names] == ["number", "integer", "integer"]
    assert rules.check_rows(request["example"]["data"]) == []


def test_the_flag_policy_answers_and_lists_what_is_outside(loaded: LoadedModel):
    flagging = ScoringService(loaded, ScoringSettings(out_of_range="flag"))
    status, payload = flagging.handle(body([ROW, with_value("grade", 7)]))
    assert status == 200
    assert len(payload["predictions"]) == 2
    assert payload["out_of_range"] == [
        {"row": 1, "column": "grade", "value": 7.0, "rule": "is not one of the categories [1, 2, 3]"}
    ]
    status, answer = flagging.respond(body([ROW] * 20))
    assert status == 200
    assert answer["out_of_range"] == []


def test_a_model_trained_with_other_library_versions_is_refused_naming_them(model_folder: Path, tmp_path: Path):
    from importlib.metadata import version

    from amlops.scoring.model import LibraryMismatchError

    copy = shutil.copytree(model_folder, tmp_path / "model")
    requirements = copy / "requirements.txt"
    assert f"scikit-learn=={version('scikit-learn')}" in requirements.read_text().splitlines()  # as trained
    requirements.write_text(requirements.read_text().replace(f"=={version('scikit-learn')}", "==0.24.2"))
    with pytest.raises(LibraryMismatchError) as refused:
        load_model(copy)
    assert f"trained with scikit-learn 0.24.2 (here: {version('scikit-learn')})" in str(refused.value)
    assert str(requirements) in str(refused.value)
