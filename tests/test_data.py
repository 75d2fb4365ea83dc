"""The data snapshot, the schema and the prep step, with a bad-data fixture for each rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amlops.core.files import read_json
from amlops.core.settings import DataSettings
from amlops.ml import data
from amlops.steps import prep
from tests.support.project import CONTRACT, FEATURES, SNAPSHOT, TARGET, make_table


def test_snapshot_matches_recorded_sha256():
    recorded = SNAPSHOT.with_name(SNAPSHOT.name + ".sha256").read_text().split()[0]
    assert data.sha256_file(SNAPSHOT) == recorded


def test_the_test_projects_data_is_made_by_its_generator(tmp_path: Path):
    digest = data.write_csv_with_sha256(make_table(), tmp_path / SNAPSHOT.name)
    assert (tmp_path / SNAPSHOT.name).read_bytes() == SNAPSHOT.read_bytes()
    assert len(digest) == 64


def test_snapshot_is_valid_and_has_the_expected_shape(table: pd.DataFrame):
    valid = data.validate(table, CONTRACT, min_rows=100)
    assert list(valid.columns) == [*FEATURES, TARGET]
    assert len(valid) == 400
    assert all(dtype == np.float64 for dtype in valid.dtypes)


def test_split_is_deterministic_and_disjoint(table: pd.DataFrame):
    first = data.split(table, test_size=0.2, seed=42)
    second = data.split(table, test_size=0.2, seed=42)
    other = data.split(table, test_size=0.2, seed=7)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert not first[1].equals(other[1])
    assert len(first[0]) + len(first[1]) == len(table)
    assert len(first[1]) == 80


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["width"])


def _nan(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[3, "height"] = np.nan
    return frame


def _out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["length"] = frame["length"].astype(float)
    frame.loc[10, "length"] = 250.0
    return frame


def _bad_category(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["grade"] = frame["grade"].astype(float)
    frame.loc[0, "grade"] = 4.0
    return frame


def _wrong_dtype(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["weight"] = frame["weight"].astype(object)
    frame.loc[5, "weight"] = "high"
    return frame


def _too_few_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(20)


def _extra_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(row_id=range(len(frame)))


BAD_DATA = {
    "missing column": (_missing_column, "width", "column_in_dataframe"),
    "NaN": (_nan, "height", "not_nullable"),
    "out of range": (_out_of_range, "length", "in_range"),
    "unknown category": (_bad_category, "grade", "isin"),
    "wrong dtype": (_wrong_dtype, "weight", "coerce_dtype"),
    "too few rows": (_too_few_rows, "<table>", "min_rows"),
    "unexpected column": (_extra_column, "row_id", "column_in_schema"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_rejected_naming_column_and_rule(case: str, table: pd.DataFrame):
    corrupt, column, rule = BAD_DATA[case]
    with pytest.raises(data.DataValidationError) as raised:
        data.validate(corrupt(table), CONTRACT, min_rows=100, source="bad.csv")
    failures = raised.value.failures
    assert any(f["column"] == column and rule in f["rule"] for f in failures), failures
    message = str(raised.value)
    assert message.startswith("bad.csv: data failed validation")
    assert repr(column) in message
    assert rule in message


def test_a_missing_or_undeclared_column_says_what_to_do(table: pd.DataFrame):
    with pytest.raises(data.DataValidationError) as raised:
        data.validate(_extra_column(_missing_column(table)), CONTRACT, min_rows=100, source="bad.csv")
    message = str(raised.value)
    assert "column 'width': column_in_dataframe (required column is missing: contract.yml declares it)" in message
    assert "column 'row_id': column_in_schema (contract.yml declares no such column: remove it from the file" in message


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_file_not_separated_by_commas_is_named_so(separator: str, table: pd.DataFrame, tmp_path: Path):
    """Excel's CSV in many locales: read as one column, it would be every column missing and one unknown."""
    path = tmp_path / "excel.csv"
    table.to_csv(path, sep=separator, index=False)
    with pytest.raises(data.DataValidationError) as raised:
        data.validate(data.load_csv(path), CONTRACT, min_rows=100, source=str(path))
    assert raised.value.failures == [
        {
            "column": "<table>",
            "rule": "comma_separated",
            "detail": f"the file is separated by {separator!r}, not ',': save it as a comma-separated CSV",
        }
    ]


def test_an_int_column_refuses_a_fraction_instead_of_truncating_it(table: pd.DataFrame):
    """pandas casts 2.5 to 2: read as numbers, checked whole, then made ints."""
    declared = CONTRACT.model_copy(
        update={
            "features": tuple(
                f.model_copy(update={"type": "int"}) if f.name == "grade" else f for f in CONTRACT.features
            )
        }
    )
    whole = data.validate(table.assign(grade=table["grade"].astype(float)), declared, min_rows=100)
    assert whole["grade"].dtype == np.int64
    assert whole["grade"].tolist() == table["grade"].astype(int).tolist()
    fraction = table.assign(grade=table["grade"].astype(float))
    fraction.loc[7, "grade"] = 2.5
    with pytest.raises(data.DataValidationError) as raised:
        data.validate(fraction, declared, min_rows=100)
    assert {"column": "grade", "rule": "whole_number", "detail": "1 failing value(s), e.g. row 7 2.5"} in (
        raised.value.failures
    )


def test_all_failures_are_reported_at_once(table: pd.DataFrame):
    with pytest.raises(data.DataValidationError) as raised:
        data.validate(_nan(_out_of_range(table)), CONTRACT, min_rows=100)
    assert {f["column"] for f in raised.value.failures} >= {"length", "height"}


def test_prep_writes_splits_and_fingerprint(project: Path, tmp_path: Path):
    record = prep.run(project / CONTRACT.data, tmp_path / "out")
    assert record["sha256"] == data.sha256_file(SNAPSHOT)
    assert read_json(tmp_path / "out" / prep.FINGERPRINT_FILE) == record
    train, test = prep.load_splits(tmp_path / "out")
    assert (len(train), len(test)) == (record["train_rows"], record["test_rows"]) == (320, 80)


def test_prep_cli_fails_on_bad_data_without_writing_outputs(
    project: Path, tmp_path: Path, table: pd.DataFrame, caplog: pytest.LogCaptureFixture
):
    from amlops.core.errors import EXIT_BAD_INPUT
    from amlops.core.logs import run_step

    bad = tmp_path / "bad.csv"
    _nan(table).to_csv(bad, index=False)
    code = run_step(prep.main, ["--data", str(bad), "--out", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert "'height'" in caplog.text
    assert "not_nullable" in caplog.text
    assert not (tmp_path / "out").exists()


def test_prep_names_a_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        prep.run(tmp_path / "nope.csv", tmp_path / "out")


def test_data_rules_come_from_settings(monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame):
    monkeypatch.setenv("AMLOPS_DATA_MIN_ROWS", "500")
    with pytest.raises(data.DataValidationError, match="min_rows"):
        prep.prepare(table, CONTRACT, DataSettings(), source="snapshot")
