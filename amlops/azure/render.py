"""Write the translated entities as Azure ML v2 YAML files, each with its ``$schema`` (``make render``).

::

    build/azureml/
      manifest.json                 every file, its kind, its azure.ai.ml loader and its `az ml ... create` command
      code/train/  code/score/      staged code: the amlops package + train.py and contract.yml / score.py
      data/<snapshot>.csv           the training data snapshot (the pipeline's uri_file input)
      environments/train.yml  score.yml
      components/prep.yml  train.yml  evaluate.yml  register.yml  training_pipeline.yml
      jobs/train.yml  pipeline.yml
      schedules/training_pipeline.yml
      endpoints/<stage>/endpoint.yml  deployment.yml
      endpoints/prod/instance-type.yml  the Kubernetes InstanceType the production deployment names (kubectl apply)

Paths inside the files are relative to each file, so the folder can be moved or published as a build artifact
and used with ``az ml <thing> create -f <file>``.

Three SDK behaviours shape this module (azure-ai-ml 1.35): ``dump()`` of a job writes every local input path
with an ``azureml:`` prefix (a reference to a registered asset that does not exist); ``dump(dest)`` of an online
endpoint writes nothing (it returns the dict); and a command job loaded with ``load_job`` is a pipeline node whose
``dump`` ``load_job`` refuses. So entities are dumped to a dict (nodes converted to jobs first), and local paths
are rewritten relative to the file before it is written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from amlops.azure import data_assets, online, translate
from amlops.azure.connection import offline_client
from amlops.core import lineage
from amlops.core.azure_settings import AzureSettings
from amlops.core.config import ConfigError
from amlops.core.contract import CONTRACT_FILE
from amlops.core.names import STAGES
from amlops.core.settings import PACKAGE_DIR

log = logging.getLogger(__name__)

SCHEMA_URL = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"
MANIFEST = "manifest.json"
DEFAULT_CRON = "0 6 * * 1"  # Mondays 06:00 UTC
DEFAULT_DEPLOYMENT_NAME = "blue"

#: kind → (``$schema`` name, ``azure.ai.ml`` loader, ``az ml`` command group).
KINDS: dict[str, tuple[str, str, str]] = {
    "environment": ("environment", "load_environment", "environment"),
    "command_component": ("commandComponent", "load_component", "component"),
    "pipeline_component": ("pipelineComponent", "load_component", "component"),
    "command_job": ("commandJob", "load_job", "job"),
    "pipeline_job": ("pipelineJob", "load_job", "job"),
    # The schedule loader is not exported by azure.ai.ml (azure.ai.ml.entities._load_functions.load_schedule).
    "schedule": ("schedule", "load_schedule", "schedule"),
    "managed_online_endpoint": ("managedOnlineEndpoint", "load_online_endpoint", "online-endpoint"),
    "managed_online_deployment": ("managedOnlineDeployment", "load_online_deployment", "online-deployment"),
    "kubernetes_online_endpoint": ("kubernetesOnlineEndpoint", "load_online_endpoint", "online-endpoint"),
    "kubernetes_online_deployment": ("kubernetesOnlineDeployment", "load_online_deployment", "online-deployment"),
}


@dataclass(frozen=True)
class RenderedFile:
    """One rendered YAML file."""

    file: str
    kind: str
    schema: str
    loader: str
    create: str


@dataclass(frozen=True)
class TrainingAssets:
    """The training side, staged under one folder and translated with absolute paths (what is submitted)."""

    code: Path
    #: A staged copy of the training CSV, or a data asset reference (``azureml:<name>:<version>`` or ``@latest``).
    data: Path | str
    environment: Any
    components: dict[str, Any]
    pipeline: Any
    train_job: Any


# --- staging ------------------------------------------------------------------------------------------------


def _copy_package(dest: Path) -> None:
    shutil.copytree(PACKAGE_DIR, dest / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage_training_code(project: translate.Project, dest: Path) -> Path:
    """A fresh code folder for the training jobs: the ``amlops`` package and ``runconfig.script``."""
    dest = Path(dest)
    script = project.root / project.runconfig.script
    if not script.is_file():
        raise ConfigError(f"{project.root / translate.RUNCONFIG_FILE}: field 'script': {script} does not exist")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _copy_package(dest)
    shutil.copy2(script, dest / script.name)
    lineage.record_source(dest, project.root)  # lineage: the snapshot has no .git for the register step to read
    # The job's working directory is this folder: the contract, and the drift reference of the prep step.
    shutil.copy2(project.root / CONTRACT_FILE, dest / CONTRACT_FILE)
    snapshot = project.settings.contract.data
    (dest / snapshot.parent).mkdir(parents=True, exist_ok=True)
    for name in (snapshot.name, snapshot.name + ".sha256"):
        shutil.copy2(project.root / snapshot.parent / name, dest / snapshot.parent / name)
    return dest


def stage_scoring_code(project: translate.Project, dest: Path) -> Path:
    """A fresh scoring code folder: ``entryScript`` and the ``amlops`` package (the app folder of a deployment).

    The deploy command uses :func:`amlops.serving.stage.stage` instead, which adds the model's swagger files.
    """
    dest = Path(dest)
    inference = project.inference
    entry = (project.root / inference.sourceDirectory / inference.entryScript).resolve()
    if not entry.is_file():
        source = project.root / translate.INFERENCE_CONFIG_FILE
        raise ConfigError(f"{source}: field 'entryScript': {entry} does not exist")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(entry, dest / inference.entryScript)
    _copy_package(dest)
    return dest


def stage_data(source: Path | str, dest_dir: Path) -> Path | str:
    """Copy the training data file into ``dest_dir`` (the pipeline uploads it as a ``uri_file``).

    A data asset reference is checked and returned as it is: the job reads the asset.
    """
    if data_assets.is_reference(source):
        data_assets.parse_reference(str(source))
        return str(source)
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: data file not found")
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(source, dest_dir / source.name))


def training_assets(
    project: translate.Project, out: Path, data: Path | str | None = None, inputs: dict | None = None
) -> TrainingAssets:
    """Stage the training code and data under ``out`` and translate the training side with absolute paths."""
    out = Path(out).resolve()
    code = stage_training_code(project, out / "code" / "train")
    data_file = stage_data(data or project.settings.data_snapshot, out / "data")
    environment = translate.training_environment(project)
    components = translate.step_components(project, code, environment)
    return TrainingAssets(
        code=code,
        data=data_file,
        environment=environment,
        components=components,
        pipeline=translate.training_pipeline(project, components, data_file, inputs),
        train_job=translate.train_job(project, code, environment, data_file),
    )


# --- writing ------------------------------------------------------------------------------------------------


def entity_dict(entity: Any) -> dict[str, Any]:
    """An entity as the plain dict its YAML form holds (through the SDK's own ``dump``)."""
    from azure.ai.ml.entities import Command

    if isinstance(entity, Command):
        # load_job returns a command job as a pipeline node, whose dump load_job refuses ("component: Unknown
        # field"); the SDK's own schedule serializer converts it the same way.
        entity = entity._to_job()
    buffer = io.StringIO()
    returned = entity.dump(buffer)
    if buffer.getvalue():
        content = yaml.safe_load(buffer.getvalue())
    elif isinstance(returned, dict):  # online endpoints return the dict and ignore the destination
        content = returned
    else:
        raise TypeError(f"{type(entity).__name__}.dump wrote nothing")
    return json.loads(json.dumps(content, default=str))


def _local_path(value: str, base: Path) -> Path | None:
    candidate = value.removeprefix("azureml:")
    path = Path(candidate) if os.path.isabs(candidate) else base / candidate
    return path if path.exists() else None


def relativize(content: Any, yaml_dir: Path, base: Path | None = None) -> Any:
    """Rewrite local ``code``/``path`` values relative to the file (the SDK may have mangled them to ``azureml:...``).

    Args:
        content: A dumped entity.
        yaml_dir: The folder of the file being written.
        base: What relative paths in ``content`` are relative to (an entity loaded from a file keeps its paths
            relative to that file); ``yaml_dir`` by default.
    """
    base = base or yaml_dir
    if isinstance(content, dict):
        result = {}
        for key, value in content.items():
            local = _local_path(value, base) if key in ("code", "path") and isinstance(value, str) else None
            result[key] = os.path.relpath(local, yaml_dir) if local else relativize(value, yaml_dir, base)
        return result
    if isinstance(content, list):
        return [relativize(item, yaml_dir, base) for item in content]
    return content


def yaml_text(
    entity: Any,
    kind: str,
    yaml_dir: Path,
    header: str = "",
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> str:
    """The YAML file for an entity: a comment header, ``$schema``, then the SDK's own fields."""
    content = relativize(entity_dict(entity), Path(yaml_dir).resolve())
    if adjust:
        content = adjust(content)
    content.pop("$schema", None)
    document = {"$schema": SCHEMA_URL.format(KINDS[kind][0]), **content}
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def schedule_job_by_file(job_file: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A schedule file names its job by file: the SDK dumps the job inline, a form its own loader refuses.

    ``is_enabled`` is dropped too: the loader does not accept it (create the schedule, then disable it).
    """

    def adjust(content: dict[str, Any]) -> dict[str, Any]:
        return {**{key: value for key, value in content.items() if key != "is_enabled"}, "create_job": job_file}

    return adjust


def write(
    entity: Any,
    kind: str,
    path: Path,
    out: Path,
    header: str = "",
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> RenderedFile:
    """Write one entity and describe it for the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml_text(entity, kind, path.parent, header, adjust))
    schema, loader, group = KINDS[kind]
    relative = path.relative_to(out).as_posix()
    return RenderedFile(relative, kind, SCHEMA_URL.format(schema), loader, f"az ml {group} create -f {relative}")


def _fresh(out: Path) -> None:
    if out.exists():
        if not (out / MANIFEST).is_file() and any(out.iterdir()):
            raise ConfigError(f"{out}: exists and was not written by render (no {MANIFEST}); choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def render(
    project: translate.Project,
    out: Path,
    *,
    data: Path | None = None,
    model_version: str | None = None,
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME,
    cron: str = DEFAULT_CRON,
    azure: AzureSettings | None = None,
) -> list[RenderedFile]:
    """Render every v2 entity the document's files describe into ``out`` (replaced if render wrote it before).

    Args:
        project: The parsed project files.
        out: The folder to write (``build/azureml`` by default in the CLI).
        data: Training data file; the committed snapshot when omitted.
        model_version: Model version the deployments serve; ``@latest`` when omitted.
        deployment_name: Name of the rendered deployments.
        cron: Schedule of the published pipeline (UTC); the schedule is rendered, created disabled by publish.
        azure: Azure settings (endpoint names).
    """
    azure = azure or AzureSettings()
    out = Path(out).resolve()
    _fresh(out)
    assets = training_assets(project, out, data)
    score_code = stage_scoring_code(project, out / "code" / "score")
    settings = project.settings
    sources = f"Rendered by `python -m amlops azure render` from {translate.RUNCONFIG_FILE}"
    rendered = [
        write(
            translate.training_environment(project, named=True),
            "environment",
            out / "environments" / "train.yml",
            out,
            f"{sources} (environment) and {project.runconfig.environment.python.condaDependenciesFile}.",
        ),
        write(
            translate.scoring_environment(project, named=True),
            "environment",
            out / "environments" / "score.yml",
            out,
            f"Rendered from {translate.INFERENCE_CONFIG_FILE} (condaFile: {project.inference.condaFile}).",
        ),
    ]
    for step, component in assets.components.items():
        rendered.append(
            write(component, "command_component", out / "components" / f"{step}.yml", out, f"{sources}: step {step}.")
        )
    rendered += [
        write(
            translate.pipeline_component(assets.pipeline),
            "pipeline_component",
            out / "components" / "training_pipeline.yml",
            out,
            f"{sources}: the training pipeline as a pipeline component (what `azure publish` registers).",
        ),
        write(
            assets.train_job,
            "command_job",
            out / "jobs" / "train.yml",
            out,
            f"{sources}: script + arguments as one command job (prep, then {project.runconfig.script}).",
        ),
        write(
            assets.pipeline,
            "pipeline_job",
            out / "jobs" / "pipeline.yml",
            out,
            f"{sources}: the training pipeline (built with @dsl.pipeline, bindings checked).",
        ),
        write(
            translate.scheduled_pipeline_job(project, f"azureml:{project.pipeline_name}@latest", assets.data),
            "pipeline_job",
            out / "jobs" / "scheduled_pipeline.yml",
            out,
            f"{sources}: one run of the published pipeline component (what the schedule creates).",
        ),
    ]
    schedule_file = out / "schedules" / "training_pipeline.yml"
    rendered.append(
        write(
            translate.training_schedule(project, assets.pipeline, cron),
            "schedule",
            schedule_file,
            out,
            f"{sources}: runs the published pipeline on '{cron}' (UTC).\n"
            "The YAML form cannot say 'disabled': after `az ml schedule create`, run `az ml schedule disable`\n"
            "(`python -m amlops azure publish --schedule` creates it disabled).",
            adjust=schedule_job_by_file(os.path.relpath(out / "jobs" / "scheduled_pipeline.yml", schedule_file.parent)),
        )
    )
    scoring_environment = translate.scoring_environment(project)
    model = online.model_reference(settings.model_name, model_version)
    for stage in STAGES.values():
        path = settings.root / stage.config_file
        if not path.is_file():
            log.warning("render: %s not found; no %s endpoint rendered", path, stage.description)
            continue
        entities = online.online_entities(
            project,
            project.deployment_config(path),
            endpoint_name=azure.endpoint_name(stage.name, settings),
            deployment_name=deployment_name,
            model=model,
            code=score_code,
            environment=scoring_environment,
            source=str(path),
        )
        folder = out / "endpoints" / stage.name
        header = f"Rendered from {stage.config_file} ({stage.description}) and {translate.INFERENCE_CONFIG_FILE}."
        rendered += [
            write(entities.endpoint, f"{entities.kind}_online_endpoint", folder / "endpoint.yml", out, header),
            write(entities.deployment, f"{entities.kind}_online_deployment", folder / "deployment.yml", out, header),
        ]
        if entities.instance_type:
            write_instance_type(entities.instance_type, folder / INSTANCE_TYPE_FILE, stage.config_file)
    (out / MANIFEST).write_text(json.dumps([asdict(item) for item in rendered], indent=2) + "\n")
    log.info("render: %d files in %s", len(rendered), out)
    return rendered


#: The Kubernetes manifest of a production deployment's instance type, beside its deployment.yml.
INSTANCE_TYPE_FILE = "instance-type.yml"


def write_instance_type(manifest: dict, path: Path, source: str) -> Path:
    """Write the ``InstanceType`` a Kubernetes deployment names, as the manifest to apply to the cluster once.

    It is a Kubernetes resource, not an Azure ML entity: it is not in ``manifest.json``, and ``az ml`` does not
    create it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    name = manifest["metadata"]["name"]
    header = (
        f"# Rendered from {source}: the instance type the production deployment names ({name}).\n"
        "# Apply it once to the attached cluster, before the first production release:\n"
        f"#   kubectl apply -f {path.name}\n"
    )
    path.write_text(header + yaml.safe_dump(manifest, sort_keys=False))
    return path


def loaders() -> dict[str, Callable[..., Any]]:
    """The ``azure.ai.ml`` loader of each kind of file (the schedule's is not exported by the package)."""
    import azure.ai.ml as ml
    from azure.ai.ml.entities._load_functions import load_schedule

    return {name: getattr(ml, name) for _, name, _ in KINDS.values() if hasattr(ml, name)} | {
        "load_schedule": load_schedule
    }


def verify(out: Path, client: Any = None) -> list[Any]:
    """Load every rendered file back with its ``azure.ai.ml`` loader and validate the jobs offline.

    Args:
        out: A folder :func:`render` wrote.
        client: Validates jobs (``jobs.validate``); an offline client by default.

    Returns:
        The loaded entities, in manifest order.

    Raises:
        ConfigError: naming the first file that does not load or validate.
    """
    out = Path(out)
    client = client or offline_client()
    load = loaders()
    entities = []
    for item in json.loads((out / MANIFEST).read_text()):
        path = out / item["file"]
        try:
            entity = load[item["loader"]](path)
        except Exception as error:  # the SDK raises marshmallow and its own exception types
            raise ConfigError(f"{path}: does not load with {item['loader']}: {error}") from error
        if item["kind"].endswith("_job"):
            result = client.jobs.validate(entity)
            if not result.passed:
                raise ConfigError(f"{path}: does not validate: {result.error_messages}")
        entities.append(entity)
    return entities
