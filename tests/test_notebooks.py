"""The notebooks run top to bottom, in order, in a fresh copy of the repository, and carry no outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.checkout import EXAMPLES, REPO, clone_checkout, on_a_free_port

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
    on_a_free_port(clone)  # the config 02 deploys with
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


# --- the kernel ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_name_the_project_kernel_and_check_it_first(name: str):
    from amlops.core.kernel import KERNEL_DISPLAY_NAME, KERNEL_NAME

    notebook = json.loads((REPO / "notebooks" / name).read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == KERNEL_NAME
    assert notebook["metadata"]["kernelspec"]["display_name"] == KERNEL_DISPLAY_NAME
    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    assert "check_kernel(REPO)" in "".join(first["source"])


def _project(root: Path) -> Path:
    """A repository root with a .venv installed after its lock, as `make install` leaves it."""
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").touch()
    (root / "requirements.lock").write_text("numpy==2.2.6\n")
    (root / ".venv" / ".installed").touch()
    return root


def test_the_kernel_check_names_what_to_run(tmp_path: Path):
    import os

    from amlops.core.kernel import KERNEL_DISPLAY_NAME, kernel_problem

    repo = _project(tmp_path / "repo")
    venv = str(repo / ".venv")
    assert kernel_problem(repo, prefix=venv, version=(3, 10, 13)) is None
    assert kernel_problem(repo, prefix=venv, version=(3, 13, 0)) is None
    assert "Python 3.9 and the project needs 3.10 to 3.13" in kernel_problem(repo, prefix=venv, version=(3, 9, 1))
    other = kernel_problem(repo, prefix="/anaconda/envs/azureml_py310_sdkv2", version=(3, 10, 13))
    assert other.startswith("This kernel runs /anaconda/envs/azureml_py310_sdkv2, not the project's .venv")
    assert f'run `make kernel`, then pick the kernel "{KERNEL_DISPLAY_NAME}"' in other
    os.utime(repo / ".venv" / ".installed", (1, 1))  # the lock changed since the last install
    assert "older than requirements.lock" in kernel_problem(repo, prefix=venv, version=(3, 11, 7))
    (repo / ".venv" / "bin" / "python").unlink()
    assert "has no environment yet" in kernel_problem(repo, prefix=venv, version=(3, 11, 7))


def test_a_notebook_in_another_kernel_stops_at_its_first_cell_with_one_sentence(tmp_path: Path):
    import subprocess
    import sys

    notebook = json.loads((REPO / "notebooks" / NOTEBOOKS[0]).read_text())
    first = "".join(next(c for c in notebook["cells"] if c["cell_type"] == "code")["source"])
    other = Path(sys.base_prefix) / "bin" / "python3"  # the interpreter .venv was made from: not the project's kernel
    done = subprocess.run(
        [str(other), "-c", first], cwd=REPO / "notebooks", capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.startswith("This kernel runs "), done.stderr
    assert "run `make kernel`" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_make_kernel_registers_the_venv_for_the_user(tmp_path: Path):
    import os
    import subprocess
    import sys

    from amlops.core.kernel import KERNEL_DISPLAY_NAME, KERNEL_NAME

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")} | {"JUPYTER_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "amlops.core.kernel"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert spec["display_name"] == KERNEL_DISPLAY_NAME
    assert spec["argv"][0] == sys.executable


def test_the_notebooks_say_where_runs_and_models_go(project: Path, monkeypatch: pytest.MonkeyPatch):
    from amlops.app import workflow
    from amlops.azure.connection import WORKSPACE_VARIABLES

    assert workflow.registry("local") == f"the local MLflow store sqlite:///{project / '.mlops' / 'mlflow.db'}"
    for name, value in zip(WORKSPACE_VARIABLES, ("sub", "rg", "ws"), strict=True):
        monkeypatch.setenv(name, value)
    assert workflow.registry("azure").startswith("the Azure ML workspace ws (resource group rg")


# --- the workspace as the registry, training in this kernel ---------------------------------------------------

WORKSPACE_MLFLOW = "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"


class _Workspaces:
    def __init__(self):
        self.asked: list[str] = []

    def get(self, name: str):
        from types import SimpleNamespace

        self.asked.append(name)
        return SimpleNamespace(name=name, mlflow_tracking_uri=WORKSPACE_MLFLOW)


def test_the_workspace_can_be_the_registry_while_training_stays_in_the_kernel(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    from types import SimpleNamespace

    from amlops.app import workflow
    from amlops.core.settings import ProjectSettings

    workspaces = _Workspaces()
    monkeypatch.setattr(workflow, "_azure", lambda: SimpleNamespace(workspace_name="ws", workspaces=workspaces))
    assert workflow.check_target("local", registry="workspace") == "local"
    assert workspaces.asked == ["ws"]
    assert ProjectSettings().resolved_tracking_uri == WORKSPACE_MLFLOW  # runs and versions go there from now on
    assert workflow.registry("local").startswith("the Azure ML workspace's MLflow")
    assert "training runs in this kernel" in workflow.registry("local")


def test_a_compute_instance_is_offered_the_workspace_as_registry(project: Path, monkeypatch: pytest.MonkeyPatch):
    from amlops.app import workflow
    from amlops.core import machine

    monkeypatch.delenv("CI_NAME", raising=False)
    monkeypatch.setattr(machine, "INSTANCE_FILE", project / "not-a-compute-instance")
    assert "registry = " not in workflow.registry("local")
    monkeypatch.setenv("CI_NAME", "ana-ci")
    offer = workflow.registry("local")
    assert offer.startswith("the local MLflow store sqlite:///")
    assert 'on compute instance ana-ci, registry = "workspace" sends runs and models to the workspace' in offer


def test_an_unknown_registry_is_refused(project: Path):
    from amlops.app import workflow

    with pytest.raises(ValueError, match="registry must be one of local, workspace"):
        workflow.check_target("local", registry="cloud")
