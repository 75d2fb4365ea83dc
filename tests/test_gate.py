"""The evaluate step's gate: floors for the first model, a margin over production afterwards."""

from __future__ import annotations

import pytest

from amlops.core.settings import GateSettings
from amlops.steps.evaluate import decide

GATE = GateSettings(max_rmse=60.0, min_r2=0.4, min_improvement=0.01)
GOOD = {"rmse": 50.0, "mae": 40.0, "r2": 0.5}


def test_first_model_meeting_the_floors_is_registered():
    decision = decide(GOOD, None, GATE)
    assert decision.outcome == "register"
    assert decision.register
    assert "no model in production" in decision.reasons[0]


@pytest.mark.parametrize(
    ("candidate", "named"),
    [
        ({"rmse": 61.0, "mae": 40.0, "r2": 0.5}, "rmse 61.000 is above the ceiling 60.0"),
        ({"rmse": 50.0, "mae": 40.0, "r2": 0.39}, "r2 0.3900 is below the floor 0.4"),
    ],
)
def test_first_model_below_a_floor_is_rejected_with_the_reason(candidate, named):
    decision = decide(candidate, None, GATE)
    assert decision.outcome == "reject"
    assert not decision.register
    assert named in decision.reasons


def test_a_floor_applies_even_when_better_than_production():
    decision = decide({"rmse": 61.0, "mae": 1.0, "r2": 0.5}, {"rmse": 70.0, "mae": 1.0, "r2": 0.5}, GATE, "3")
    assert decision.outcome == "reject"


def test_a_better_model_is_registered():
    decision = decide({"rmse": 49.0, "mae": 40.0, "r2": 0.52}, GOOD, GATE, "3")
    assert decision.outcome == "register"
    assert "production v3" in decision.reasons[0]
    assert decision.production == GOOD
    assert decision.production_version == "3"


def test_a_worse_model_keeps_production():
    decision = decide({"rmse": 52.0, "mae": 41.0, "r2": 0.48}, GOOD, GATE, "3")
    assert decision.outcome == "keep"
    assert not decision.register
    assert "production v3 stays" in decision.reasons[0]


def test_a_tie_keeps_production():
    assert decide(dict(GOOD), GOOD, GATE, "3").outcome == "keep"


def test_better_by_less_than_the_margin_keeps_production():
    slightly_better = {"rmse": 49.8, "mae": 40.0, "r2": 0.5}  # 0.4% better; the margin is 1%
    assert decide(slightly_better, GOOD, GATE, "3").outcome == "keep"
    no_margin = GateSettings(max_rmse=60.0, min_r2=0.4, min_improvement=0.0)
    assert decide(slightly_better, GOOD, no_margin, "3").outcome == "register"
    assert decide(dict(GOOD), GOOD, no_margin, "3").outcome == "keep"


def test_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AMLOPS_GATE_MIN_R2", "0.9")
    decision = decide(GOOD, None, GateSettings())
    assert decision.outcome == "reject"
    assert decision.gate["min_r2"] == 0.9
