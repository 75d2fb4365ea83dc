"""The notebooks run top to bottom, in order, in a fresh copy of the repository, and carry no outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.checkout import EXAMPLES, REPO, clone_checkout

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
TIME_LIMIT_SECONDS = 240


def test_the_four_notebooks_exist_in_order():
    assert [name[:2] for name in NOTEBOOKS] == ["00", "01", "02", "03"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_carry_no_outputs(name: str):
    notebook = json.loads((REPO / "notebooks" / name).read_text())
    dirty = [
        i
        for i, c in enumerate(notebook["cells"])
        if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])
    ]
    assert not dirty, f"{name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_have_one_parameters_cell_defaulting_to_local(name: str):
    notebook = json.loads((REPO / "notebooks" / name).read_text())
    tagged = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert 'target = "local"' in "".join(tagged[0]["source"])


@pytest.mark.integration
@pytest.mark.timeout(900)  # four notebooks (training, a pipeline run, a deployment), each cell may take 240 s
@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda path: path.name if path else "root")
def test_notebooks_run_in_order_in_a_fresh_copy(tmp_path: Path, example: Path | None):
    """The root's model, and each example set up in a copy as its README says: the notebooks name neither."""
    import papermill

    clone = clone_checkout(tmp_path / "a clone with spaces", example)
    env_before = dict(os.environ)
    os.environ.pop("AMLOPS_ROOT", None)  # the notebooks must find the copy on their own
    try:
        for name in NOTEBOOKS:
            papermill.execute_notebook(
                str(clone / "notebooks" / name),
                str(tmp_path / f"executed-{name}"),
                cwd=str(clone / "notebooks"),
                kernel_name="python3",
                execution_timeout=TIME_LIMIT_SECONDS,
                progress_bar=False,
                parameters={"target": "local"},
            )
    finally:
        os.environ.clear()
        os.environ.update(env_before)
        from amlops.serving.local import stop_recorded

        stopped_leftover = stop_recorded(clone / "build" / "endpoints")
    assert not stopped_leftover, "03 should have stopped the endpoint 02 started"
    assert (clone / ".mlops" / "mlflow.db").is_file()
    assert not (REPO / "notebooks" / ".mlops").exists()
    executed = json.loads((tmp_path / "executed-03-consume-real-time-service.ipynb").read_text())
    images = [o for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2, "the latency histogram and the latest benchmark plot should render"


def test_an_unknown_target_is_refused():
    from amlops.app import workflow

    with pytest.raises(ValueError, match="target must be one of"):
        workflow.check_target("cloud")


def test_azure_target_without_a_workspace_says_what_to_provide(project: Path, monkeypatch: pytest.MonkeyPatch):
    from amlops.app import workflow
    from amlops.azure.connection import WORKSPACE_VARIABLES, AzureSetupError

    for name in WORKSPACE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AMLOPS_AZURE_WORKSPACE_CONFIG", raising=False)
    workflow._azure.cache_clear()
    with pytest.raises(AzureSetupError, match=r"config\.json in the project root"):
        workflow.run_pipeline("azure")
