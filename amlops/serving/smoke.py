"""Smoke test of a live endpoint: known rows must get the model's own predictions, bad input a 400."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from amlops.core.contract import Contract
from amlops.core.errors import EXIT_SMOKE_FAILED, AmlopsError
from amlops.core.settings import ProjectSettings
from amlops.ml import data
from amlops.scoring.model import load_model
from amlops.serving.client import ScoringClient, error_message
from amlops.serving.stage import MODELS_DIR

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
BAD_REQUEST = b'{"data": [[1.0, 2.0]]}'


class SmokeTestFailure(AmlopsError, AssertionError):
    """The endpoint answered, but not what the model predicts."""

    exit_code = EXIT_SMOKE_FAILED
    prefix = "smoke test failed: "


class WrongModelServed(SmokeTestFailure):
    """The endpoint answered from another model or version than expected (also while routing converges)."""


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test checked."""

    rows: int
    max_abs_error: float
    model_name: str
    model_version: str
    bad_request_status: int
    bad_request_message: str


def known_rows(data_path: Path, count: int = 5, contract: Contract | None = None) -> pd.DataFrame:
    """The first ``count`` rows of a data file's feature columns (the contract's, the project's by default)."""
    features = (contract or ProjectSettings().contract).feature_names
    return data.load_csv(data_path).loc[: count - 1, list(features)].astype(float)


def smoke_test(
    client: ScoringClient, model_folder: Path, rows: pd.DataFrame, expect_name: str, expect_version: str
) -> SmokeResult:
    """Call the endpoint with ``rows`` in both request forms and one malformed request.

    Args:
        client: A client for the endpoint under test.
        model_folder: The MLflow model folder that should be serving (for in-process predictions).
        rows: Feature rows with known predictions.
        expect_name: Registered model name the endpoint must report.
        expect_version: Registered version the endpoint must report.

    Raises:
        SmokeTestFailure: naming the first check that failed.
    """
    model = load_model(model_folder)
    features = rows.loc[:, list(model.features)].to_numpy(dtype=np.float64)
    expected = model.estimator.predict(features)

    as_lists = client.score(features.tolist())
    as_records = client.score(rows.loc[:, list(model.features)].to_dict(orient="records"))
    worst = 0.0
    for form, answer in (("list-of-lists", as_lists), ("list-of-records", as_records)):
        served = answer.get("model", {})  # first: another version answering explains everything below
        if (served.get("name"), str(served.get("version"))) != (expect_name, str(expect_version)):
            raise WrongModelServed(f"{form}: endpoint serves {served}, expected {expect_name} v{expect_version}")
        got = answer.get("predictions", [])
        if len(got) != len(expected):
            raise SmokeTestFailure(f"{form}: expected {len(expected)} predictions, got {len(got)}")
        if model.classes is not None:  # labels: equal, in their own type
            wrong = [
                row for row, (ours, theirs) in enumerate(zip(got, expected.tolist(), strict=True)) if ours != theirs
            ]
            if wrong:
                row = wrong[0]
                raise SmokeTestFailure(f"{form}: row {row} labelled {got[row]!r}, the model says {expected[row]!r}")
            error = 0.0
        else:
            error = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - expected)))
            if error > TOLERANCE:
                raise SmokeTestFailure(f"{form}: predictions differ from the model's by up to {error:.3g}")
        worst = max(worst, error)

    bad = client.post(BAD_REQUEST)
    if bad.status_code != 400:
        raise SmokeTestFailure(f"a row with 2 values got HTTP {bad.status_code}, expected 400: {bad.text[:200]}")
    result = SmokeResult(len(rows), worst, expect_name, str(expect_version), bad.status_code, error_message(bad))
    log.info(
        "smoke test passed: %d rows match the model (max |error| %.2g); bad request -> 400 (%s)",
        result.rows,
        worst,
        result.bad_request_message,
    )
    return result


def smoke_local(state, data_path: Path, *, direct: bool = True) -> SmokeResult:
    """Smoke-test a running local endpoint against the model folder it serves.

    Args:
        state: The endpoint's :class:`~amlops.serving.local.EndpointState`.
        data_path: A data file whose first rows are the known rows.
        direct: Through the server's direct port, which only this server listens on and no client of the
            public port knows: clients holding the public port cannot fail a healthy server's test. ``False``
            tests the public URL, as its clients reach it.
    """
    model_folder = Path(state.deployment_dir) / MODELS_DIR / state.model_name / state.model_version
    uri = direct_scoring_uri(state) if direct else state.scoring_uri
    return smoke_test(ScoringClient(uri), model_folder, known_rows(data_path), state.model_name, state.model_version)


def direct_scoring_uri(state) -> str:
    """The scoring URI on the server's direct port (the public one when none is recorded)."""
    if not state.direct_url:
        return state.scoring_uri
    return state.direct_url + state.scoring_uri.removeprefix(state.url)
