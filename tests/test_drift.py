"""Distribution drift against the reference snapshot stops prep, naming the column and the statistic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from amlops.core.settings import DriftSettings
from amlops.ml import data, drift
from amlops.steps import prep
from tests.support.project import CONTRACT, FEATURES, TARGET


@pytest.fixture(scope="module")
def reference(table: pd.DataFrame) -> pd.DataFrame:
    return data.validate(table, CONTRACT, min_rows=100)


def _wider(frame: pd.DataFrame) -> pd.DataFrame:
    """Every item five units wider: every value still inside the schema's range."""
    return frame.assign(width=frame["width"] + 5.0)


def _longer_only(frame: pd.DataFrame) -> pd.DataFrame:
    """A different population: items longer than 50 only."""
    return frame[frame["length"] > 50].reset_index(drop=True)


def test_the_reference_does_not_drift_from_itself(reference: pd.DataFrame):
    measured = drift.check(reference, reference, DriftSettings(), "snapshot")
    assert [d.column for d in measured] == [*FEATURES, TARGET]
    assert all(d.psi == pytest.approx(0, abs=1e-12) and d.ks == 0 for d in measured)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_resample_of_the_same_population_passes(reference: pd.DataFrame, seed: int):
    resample = reference.sample(len(reference), replace=True, random_state=seed)
    drift.check(reference, resample, DriftSettings(), "resample")


def test_a_small_sample_of_the_same_population_passes(reference: pd.DataFrame):
    drift.check(reference, reference.sample(100, random_state=1), DriftSettings(), "sample")


@pytest.mark.parametrize(
    ("shift", "column"),
    [(_wider, "width"), (_longer_only, "length")],
    ids=["width+5", "length>50"],
)
def test_a_shifted_population_is_refused_naming_column_and_statistic(reference, shift, column):
    shifted = shift(reference)
    data.validate(shifted, CONTRACT, min_rows=100)  # the schema alone would accept it
    with pytest.raises(drift.DataDriftError) as raised:
        drift.check(reference, shifted, DriftSettings(), "new.csv")
    assert column in [d.column for d in raised.value.drifted]
    message = str(raised.value)
    assert message.startswith("new.csv: data drifted")
    assert f"column {column!r}: psi " in message


def test_thresholds_come_from_the_environment(reference, monkeypatch: pytest.MonkeyPatch):
    resample = reference.sample(len(reference), replace=True, random_state=0)
    monkeypatch.setenv("AMLOPS_DRIFT_MAX_PSI", "0.001")
    with pytest.raises(drift.DataDriftError, match="psi"):
        drift.check(reference, resample, DriftSettings(), "resample")


def test_psi_grows_with_the_shift(reference: pd.DataFrame):
    values = reference["width"].to_numpy()
    small, large = drift.psi(values, values + 1, 10), drift.psi(values, values + 4, 10)
    assert 0 < small < large


def test_prep_refuses_drifted_data_and_writes_nothing(project: Path, tmp_path: Path, reference, caplog):
    from amlops.core.errors import EXIT_BAD_INPUT
    from amlops.core.logs import run_step

    shifted = tmp_path / "wider.csv"
    _wider(reference).to_csv(shifted, index=False)
    code = run_step(prep.main, ["--data", str(shifted), "--out", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert "column 'width': psi" in caplog.text
    assert not (tmp_path / "out").exists()


def test_drift_check_can_be_switched_off(project: Path, tmp_path: Path, reference, monkeypatch: pytest.MonkeyPatch):
    shifted = tmp_path / "wider.csv"
    _wider(reference).to_csv(shifted, index=False)
    monkeypatch.setenv("AMLOPS_DRIFT_ENABLED", "false")
    assert prep.run(shifted, tmp_path / "out")["rows"] == len(reference)


@pytest.mark.integration
def test_drifted_data_never_reaches_the_registry(project: Path, reference):
    from amlops.lifecycle import pipeline
    from amlops.registry.mlflow import Registry

    pipeline.run()
    shifted = project / "longer.csv"
    _longer_only(reference).to_csv(shifted, index=False)
    with pytest.raises(drift.DataDriftError, match="'length'"):
        pipeline.run(shifted)
    assert [v.version for v in Registry().versions()] == ["1"]
    assert Registry().production().version == "1"
