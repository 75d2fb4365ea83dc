"""The evaluate step's gate: the contract's limits for the first model, a margin on its metric afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from amlops.core.contract import Contract, ContractError, load
from amlops.steps.evaluate import decide


def contract(
    metric: str = "rmse", direction: str = "minimize", limits: dict | None = None, min_improvement: float = 0.01
) -> Contract:
    """A small regression or classification contract with the given gate."""
    task = "regression" if metric in ("rmse", "mae", "r2") else "classification"
    return Contract.model_validate(
        {
            "name": "tiny-model",
            "data": "data/tiny.csv",
            "task": task,
            "target": {"name": "y", "type": "float" if task == "regression" else "str"},
            "features": [{"name": "x"}],
            "metric": {"name": metric, "direction": direction},
            "gate": {
                "limits": {"rmse": {"max": 60.0}, "r2": {"min": 0.4}} if limits is None else limits,
                "min_improvement": min_improvement,
            },
        }
    )


GATE = contract()
GOOD = {"rmse": 50.0, "mae": 40.0, "r2": 0.5}


def test_first_model_meeting_the_limits_is_registered():
    decision = decide(GOOD, None, GATE)
    assert decision.outcome == "register"
    assert decision.register
    assert "no model in production" in decision.reasons[0]
    assert decision.gate["metric"] == {"name": "rmse", "direction": "minimize"}


@pytest.mark.parametrize(
    ("candidate", "named"),
    [
        ({"rmse": 61.0, "mae": 40.0, "r2": 0.5}, "rmse 61 is above the ceiling 60.0"),
        ({"rmse": 50.0, "mae": 40.0, "r2": 0.39}, "r2 0.39 is below the floor 0.4"),
    ],
)
def test_first_model_outside_a_limit_is_rejected_with_the_reason(candidate, named):
    decision = decide(candidate, None, GATE)
    assert decision.outcome == "reject"
    assert not decision.register
    assert named in decision.reasons


def test_a_limit_applies_even_when_better_than_production():
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
    no_margin = contract(min_improvement=0.0)
    assert decide(slightly_better, GOOD, no_margin, "3").outcome == "register"
    assert decide(dict(GOOD), GOOD, no_margin, "3").outcome == "keep"


def test_only_the_primary_metric_decides():
    """Better on the primary metric, worse on the others: registered."""
    by_r2 = contract(metric="r2", direction="maximize")
    assert decide({"rmse": 55.0, "mae": 45.0, "r2": 0.6}, GOOD, by_r2, "3").outcome == "register"
    assert decide({"rmse": 45.0, "mae": 35.0, "r2": 0.5}, GOOD, by_r2, "3").outcome == "keep"


def test_a_metric_to_maximize_needs_a_higher_value_by_the_margin():
    gate = contract(metric="accuracy", direction="maximize", limits={"accuracy": {"min": 0.8}})
    production = {"accuracy": 0.90, "f1_macro": 0.9}
    assert decide({"accuracy": 0.95, "f1_macro": 0.9}, production, gate, "2").outcome == "register"
    assert decide({"accuracy": 0.905, "f1_macro": 0.9}, production, gate, "2").outcome == "keep"  # < 1% better
    assert decide({"accuracy": 0.85, "f1_macro": 0.9}, production, gate, "2").outcome == "keep"
    rejected = decide({"accuracy": 0.75, "f1_macro": 0.9}, None, gate)
    assert rejected.reasons == ["accuracy 0.75 is below the floor 0.8"]


def test_the_margin_is_relative_to_the_size_of_a_negative_value():
    gate = contract(metric="r2", direction="maximize", limits={}, min_improvement=0.1)
    production = {"rmse": 80.0, "mae": 60.0, "r2": -0.5}
    assert decide({"rmse": 79.0, "mae": 60.0, "r2": -0.44}, production, gate, "1").outcome == "register"
    assert decide({"rmse": 79.0, "mae": 60.0, "r2": -0.46}, production, gate, "1").outcome == "keep"  # needs -0.45


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"metric": {"name": "accuracy", "direction": "maximize"}}, "regression measures rmse, mae, r2"),
        ({"metric": {"name": "rmse", "direction": "maximize"}}, "the direction of rmse is minimize, not maximize"),
        ({"gate": {"limits": {"accuracy": {"min": 0.9}}}}, "no limit on accuracy"),
    ],
)
def test_a_metric_the_task_does_not_measure_is_refused(tmp_path: Path, changes: dict, named: str):
    content = GATE.model_dump(mode="json") | changes
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ContractError, match=named):
        load(path)
