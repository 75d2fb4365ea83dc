"""Stand-ins for the ``MLClient`` operations around training: jobs, components, schedules, data and storage.

Each records its calls and behaves as the service does where the product depends on it: jobs are validated by
the SDK's real offline checks; a schedule keeps the data version a label named when it was created (azure-ai-ml
resolves ``@latest`` then); a registered data asset's file lands in a datastore container that the storage SDK's
calls read back. ``tests/support/fakes.py`` has the endpoints and deployments.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.support.fakes import Poller

#: The workspace's default datastore and its container, as Azure ML names them.
DATASTORE = "workspaceblobstore"
CONTAINER = "azureml-blobstore-0f3e"
ACCOUNT_KEY = "test-account-key"  # pragma: allowlist secret


def not_found(what: str) -> Exception:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError(message=f"{what} not found")


class FakeJobs:
    """``MLClient.jobs``: status by a script, outputs from local folders, the SDK's own offline validation."""

    def __init__(self, statuses: list[str], outputs: dict[str, Path] | None = None, properties: dict | None = None):
        from amlops.azure.connection import offline_client

        self.statuses = list(statuses)
        self.outputs = outputs or {}
        self.properties = properties or {}
        self.calls: list[tuple] = []
        self._validator = offline_client().jobs

    def validate(self, job: Any) -> Any:
        self.calls.append(("validate", job.type))
        return self._validator.validate(job)

    def create_or_update(self, job: Any, experiment_name: str | None = None) -> Any:
        self.calls.append(("create_or_update", job, experiment_name))
        return SimpleNamespace(
            name="job-42", type=job.type, experiment_name=experiment_name, studio_url="https://ml.azure.com/runs/job-42"
        )

    def get(self, name: str) -> Any:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        self.calls.append(("get", name, status))
        return SimpleNamespace(
            name=name,
            status=status,
            studio_url=f"https://ml.azure.com/runs/{name}",
            outputs=dict.fromkeys(self.outputs),
            properties=self.properties,
        )

    def stream(self, name: str) -> None:
        self.calls.append(("stream", name))

    def download(self, name: str, *, output_name: str, download_path: str) -> None:
        self.calls.append(("download", name, output_name))
        shutil.copytree(self.outputs[output_name], Path(download_path) / "named-outputs" / output_name)


class FakeComponents:
    def __init__(self):
        self.calls: list[tuple] = []

    def create_or_update(self, component: Any, version: str | None = None) -> Any:
        self.calls.append((component, version))
        return SimpleNamespace(name=component.name, version=version, id=f"azureml:{component.name}:{version}")


class FakeSchedules:
    """``MLClient.schedules``: schedules kept by name; a data label is resolved when one is created, as the SDK does."""

    def __init__(self, comes_back_enabled: bool = False, data: FakeDataAssets | None = None):
        self.comes_back_enabled = comes_back_enabled
        self.data = data
        self.calls: list[tuple] = []
        self.kept: dict[str, Any] = {}

    def begin_create_or_update(self, schedule: Any) -> Poller:
        self.calls.append(("create", schedule))
        reference = str(schedule.create_job.inputs["data"]._data.path)
        if self.data is not None and "@" in reference:
            name, _, label = reference.removeprefix("azureml:").partition("@")
            reference = f"azureml:{name}:{self.data.get(name=name, label=label).version}"
        kept = SimpleNamespace(
            name=schedule.name,
            is_enabled=self.comes_back_enabled or schedule.is_enabled,
            trigger=schedule.trigger,
            create_job=SimpleNamespace(component=schedule.create_job.component, data=reference),
        )
        self.kept[schedule.name] = kept
        return Poller(kept)

    def begin_disable(self, name: str) -> Poller:
        self.calls.append(("disable", name))
        if name in self.kept:
            self.kept[name].is_enabled = False
        return Poller()

    def get(self, name: str) -> Any:
        if name not in self.kept:
            raise not_found(f"schedule {name}")
        return self.kept[name]


class FakeBlobs:
    """``azure.storage.blob.ContainerClient``, called as the product calls it, over a local folder per container."""

    def __init__(self, root: Path):
        self.root = root
        self.opened: list[tuple[str, str, Any]] = []

    def __call__(self, account_url: str, container_name: str, credential: Any = None) -> Any:
        self.opened.append((account_url, container_name, credential))
        folder = self.root / container_name

        class Container:
            def list_blobs(self, name_starts_with: str = "") -> list[Any]:
                files = sorted(p for p in folder.rglob("*") if p.is_file())
                names = [p.relative_to(folder).as_posix() for p in files]
                return [SimpleNamespace(name=name) for name in names if name.startswith(name_starts_with)]

            def download_blob(self, name: str) -> Any:
                return SimpleNamespace(readinto=lambda stream: stream.write((folder / name).read_bytes()))

        return Container()

    def upload(self, container: str, name: str, source: Path) -> None:
        target = self.root / container / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


class FakeDatastores:
    """``MLClient.datastores``: the default blob datastore, with its account key, as the SDK returns it."""

    def get(self, name: str, include_secrets: bool = False) -> Any:
        from azure.ai.ml.entities import AccountKeyConfiguration, AzureBlobDatastore

        if name != DATASTORE:
            raise not_found(f"datastore {name}")
        key = ACCOUNT_KEY if include_secrets else None
        return AzureBlobDatastore(
            name=name,
            account_name="mlstorage7",
            container_name=CONTAINER,
            credentials=AccountKeyConfiguration(account_key=key),
        )


class FakeDataAssets:
    """``MLClient.data``: versions kept by name; a local file is "uploaded" to the datastore, as the SDK does."""

    def __init__(self, blobs: FakeBlobs):
        self.blobs = blobs
        self.versions: dict[str, list[Any]] = {}

    def list(self, name: str) -> list[Any]:
        if name not in self.versions:
            raise not_found(f"data {name}")
        return list(self.versions[name])

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        versions = self.versions.get(name, [])
        if label == "latest" and versions:
            return max(versions, key=lambda asset: int(asset.version))
        for asset in versions:
            if asset.version == version:
                return asset
        raise not_found(f"data {name}:{version or label}")

    def create_or_update(self, asset: Any) -> Any:
        source = Path(asset.path)
        blob = f"LocalUpload/{re.sub(r'[^0-9a-f]', '', asset.tags.get('sha256', 'x'))[:32]}/{source.name}"
        self.blobs.upload(CONTAINER, blob, source)
        kept = SimpleNamespace(
            name=asset.name,
            version=asset.version,
            tags=dict(asset.tags),
            type=asset.type,
            path=f"azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/{DATASTORE}/paths/{blob}",
        )
        self.versions.setdefault(asset.name, []).append(kept)
        return kept


def training_job_outputs(project: Path, folder: Path, registered_version: str | None = None) -> dict[str, Path]:
    """A training pipeline job's outputs, as its steps write them, for the test project at ``project``."""
    from dataclasses import asdict

    from amlops.core.files import write_json
    from amlops.steps import evaluate, prep, register
    from amlops.steps import train as train_step
    from tests.support.project import CONTRACT

    outputs = {name: Path(folder) / name for name in ("prepared", "trained", "evaluation", "registration")}
    prep.run(Path(project) / CONTRACT.data, outputs["prepared"])
    write_json(
        outputs["trained"] / train_step.INFO_FILE,
        {
            "run_id": "run-7",
            "model_uri": "azureml://runs/run-7/artifacts/model",
            "params": {"alpha": 1.0},
            "metrics": {"test_rmse": 53.1},
            "data_sha256": "x",
        },
    )
    decision = evaluate.decide({"rmse": 53.1, "mae": 42.0, "r2": 0.48}, None, CONTRACT)
    write_json(outputs["evaluation"] / evaluate.DECISION_FILE, asdict(decision) | {"register": decision.register})
    write_json(
        outputs["registration"] / register.REGISTRATION_FILE,
        {
            "outcome": decision.outcome,
            "reasons": decision.reasons,
            "registered_version": registered_version,
            "production_version": None,
            "model_name": CONTRACT.name,
        },
    )
    return outputs


class FakeCompute:
    """``MLClient.compute``: the computes the workspace has, by name and type."""

    def __init__(self, computes: dict[str, str]):
        self.computes = computes

    def get(self, name: str) -> Any:
        if name not in self.computes:
            raise not_found(f"compute {name}")
        return SimpleNamespace(name=name, type=self.computes[name], provisioning_state="Succeeded")


class JobModels:
    """``MLClient.models`` over :class:`tests.support.fakes.TaggedModels`: a version registered from a job's
    output gets the files ``trained`` stands for (a job's output holds no real model here)."""

    def __init__(self, models: Any, trained: Path):
        self.tagged, self.trained = models, trained

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tagged, name)

    def create_or_update(self, model: Any) -> Any:
        if model.version is None and str(model.path).startswith("azureml://jobs/"):
            version = str(max(int(v) for v in self.tagged.folders if v.isdigit()) + 1)
            self.tagged.folders[version] = self.trained
            model = SimpleNamespace(name=model.name, version=version, tags=model.tags, path=model.path)
        created = self.tagged.create_or_update(model)
        created.id = f"azureml:{created.name}:{created.version}"
        return created


def fake_workspace(cloud: Any, models: Any, job_outputs: dict[str, Path], storage: Path, tracking_uri: str) -> Any:
    """Everything ``MLClient`` offers that the product calls, over the fakes: one workspace to stand in."""
    blobs = FakeBlobs(storage)
    data = FakeDataAssets(blobs)
    details = SimpleNamespace(name="ws-test", location="westeurope", mlflow_tracking_uri=tracking_uri)
    return SimpleNamespace(
        workspace_name="ws-test",
        resource_group_name="rg-test",
        workspaces=SimpleNamespace(get=lambda name: details),
        compute=FakeCompute({"cpu-cluster": "amlcompute", "k8s-compute": "kubernetes"}),
        jobs=FakeJobs(["Completed"], job_outputs, {"azureml.git.commit": "abc123"}),
        components=FakeComponents(),
        schedules=FakeSchedules(data=data),
        data=data,
        datastores=FakeDatastores(),
        blobs=blobs,
        models=models,
        online_endpoints=cloud.online_endpoints,
        online_deployments=cloud.online_deployments,
    )
