"""The document's files as Azure ML v2 entities (docs/azure.md): pure functions, no workspace, no network.

==============================  ====================================================================================
v1 file                         v2 entity
==============================  ====================================================================================
``sklearn.runconfig``           the ``train`` command component and a command job: ``code``, ``command`` (script +
+ ``myenv.yml``                 arguments), ``compute`` (target), ``Environment(image=baseImage, conda_file)``,
                                ``limits.timeout`` (maxRunDurationSeconds), ``resources.instance_count`` (nodeCount)
the four step CLIs              command components, chained by a pipeline job built with ``@dsl.pipeline`` (so a
                                binding that points nowhere fails when the pipeline is built), data as ``uri_file``
``inferenceConfig.yml``         ``CodeConfiguration(code, scoring_script)`` + scoring ``Environment``
``deploymentConfig.yml`` (ACI)  ``ManagedOnlineEndpoint`` + ``ManagedOnlineDeployment``, instance type chosen from
                                cpu/memoryInGB by :data:`amlops.azure.online.MANAGED_INSTANCE_TYPES`
a ``computeType: AKS`` file     ``KubernetesOnlineEndpoint(compute)`` + ``KubernetesOnlineDeployment`` (resources,
                                scale settings, request settings, liveness probe)
==============================  ====================================================================================

Every function takes the folders it refers to (code, data) as arguments: the operations pass absolute paths of
staged folders, :mod:`amlops.azure.render` writes the same entities with paths relative to each YAML file.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from amlops.core import config
from amlops.core import deployment_config as deployments
from amlops.core.config import ConfigError
from amlops.core.contract import Contract
from amlops.core.files import content_version, folder_content
from amlops.core.settings import RUNCONFIG_FILE, ProjectSettings

INFERENCE_CONFIG_FILE = "inferenceConfig.yml"
STEPS = ("prep", "train", "evaluate", "register")
#: Scoring image when ``inferenceConfig.yml`` names no ``baseImage``: Azure ML's base image for conda environments
#: (the scoring conda file brings ``azureml-inference-server-http``).
DEFAULT_SCORING_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"

#: The settings a training job reads that the submitting machine may have changed: forwarded to every job (paths,
#: the tracking URI, the target and the Azure settings stay local; the contract travels in the code snapshot; the
#: events command runs where the job is followed, which relays the job's events).
JOB_SETTING_PREFIXES = ("AMLOPS_DATA_", "AMLOPS_DRIFT_", "AMLOPS_EFFICACY_")


@dataclass(frozen=True)
class Project:
    """The document's files, parsed, with the project settings they are read with."""

    settings: ProjectSettings
    runconfig: config.RunConfig
    inference: config.InferenceConfig

    @classmethod
    def load(cls, settings: ProjectSettings | None = None) -> Project:
        """Parse ``sklearn.runconfig`` and ``inferenceConfig.yml`` from the project root."""
        settings = settings or ProjectSettings()
        return cls(
            settings,
            config.load_runconfig(settings.root / RUNCONFIG_FILE),
            config.load_inference_config(settings.root / INFERENCE_CONFIG_FILE),
        )

    @property
    def root(self) -> Path:
        """The project root."""
        return self.settings.root

    def with_hyperparameters(self, values: dict[str, Any]) -> Project:
        """The project with some of ``sklearn.runconfig``'s hyperparameter values replaced.

        What a published pipeline's input defaults are built from, when publishing overrides them.

        Raises:
            ConfigError: naming a value that is not one of the run configuration's hyperparameters.
        """
        params = hyperparameters(self.runconfig, str(self.root / RUNCONFIG_FILE), self.settings.contract)
        check_inputs(params, values)
        arguments = [item for param in params for item in (param.flag, values.get(param.name, param.value))]
        return replace(self, runconfig=self.runconfig.model_copy(update={"arguments": arguments}))

    @property
    def prefix(self) -> str:
        """Component names are lower-case letters, digits and underscores: the model name made to fit."""
        name = re.sub(r"[^a-z0-9_]", "_", self.settings.model_name.lower())
        return name if name[:1].isalpha() else f"m_{name}"

    @property
    def pipeline_name(self) -> str:
        """Name of the training pipeline (and of the pipeline component it is published as)."""
        return f"{self.prefix}_training"

    @property
    def interpreter(self) -> str:
        """The Python the steps run with (``environment.python.interpreterPath``)."""
        return self.runconfig.environment.python.interpreterPath

    def deployment_config(self, path: Path) -> deployments.AciDeploymentConfig | deployments.AksDeploymentConfig:
        """Parse a deployment config for Azure (``computeType`` ACI or AKS)."""
        parsed = deployments.load_deployment_config(path)
        if isinstance(parsed, deployments.LocalDeploymentConfig):
            raise ConfigError(
                f"{path}: field 'computeType': 'local' runs on this machine; Azure needs ACI (managed online "
                "endpoint) or AKS (Kubernetes online endpoint)"
            )
        return parsed


# --- training -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameter:
    """One ``--flag value`` pair of ``sklearn.runconfig``'s ``arguments``, as a component input."""

    name: str
    flag: str
    value: Any

    @property
    def input_type(self) -> str:
        """The component input type of the value: an ``int`` is an ``integer`` (a ``number`` sends ``200.0``)."""
        return {bool: "boolean", int: "integer", float: "number"}.get(type(self.value), "string")

    @property
    def binding(self) -> str:
        """The argument as it appears in a component command."""
        return f"{self.flag} ${{{{inputs.{self.name}}}}}"


def hyperparameters(
    runconfig: config.RunConfig, source: str = RUNCONFIG_FILE, contract: Contract | None = None
) -> list[Hyperparameter]:
    """The train component's and the pipeline's inputs: ``contract.yml``'s ``params``, valued by ``arguments``.

    ``arguments`` are ``--flag value`` pairs; with a contract, each must name one of its ``params`` and is read as
    its type, and every parameter they leave out is an input too, with the contract's default.

    Raises:
        ConfigError: for an argument the pipeline sets itself, a flag without a value, a stray value, or (with a
            contract) a flag the contract does not declare or a value not of its type.
    """
    found = [Hyperparameter(name, flag, value) for name, flag, value in config.argument_pairs(runconfig, source)]
    if contract is None:
        return found
    unknown = [p.flag for p in found if p.name not in contract.params]
    if unknown:
        declared = ", ".join(contract.params) or "none"
        raise ConfigError(
            f"{source}: field 'arguments': {', '.join(unknown)} is not a hyperparameter of contract.yml "
            f"(its params: {declared})"
        )
    given = {p.name: p for p in found}
    typed = []
    for name, param in contract.params.items():
        flag, value = (given[name].flag, given[name].value) if name in given else (f"--{name}", param.default)
        try:
            typed.append(Hyperparameter(name, flag, param.typed(value)))
        except ValueError as error:
            raise ConfigError(f"{source}: field 'arguments': {flag}: {error}") from None
    return typed


def training_environment(project: Project, *, named: bool = False) -> Any:
    """``Environment(image=docker.baseImage, conda_file=condaDependenciesFile)`` from ``sklearn.runconfig``.

    Args:
        project: The parsed project files.
        named: Give it the runconfig's environment name and a version derived from the image and the conda
            file (for ``az ml environment create``); jobs use it anonymously.
    """
    from azure.ai.ml.entities import Environment

    environment = project.runconfig.environment
    source = project.root / RUNCONFIG_FILE
    if not environment.docker.enabled:
        raise ConfigError(
            f"{source}: field 'environment.docker.enabled': v2 jobs always run in a container; set it to true"
        )
    image = environment.docker.baseImage
    if environment.python.userManagedDependencies:
        # v1: the image already has every package; no conda environment is built.
        return Environment(image=image, **_name(named, _training_name(project), image.encode()))
    conda_file = project.root / environment.python.condaDependenciesFile
    if not conda_file.is_file():
        raise ConfigError(f"{source}: field 'environment.python.condaDependenciesFile': {conda_file} does not exist")
    return Environment(
        image=image,
        conda_file=str(conda_file),
        description=f"Training environment from {RUNCONFIG_FILE} ({conda_file.name} on {image})",
        **_name(named, _training_name(project), conda_file.read_bytes() + image.encode()),
    )


def scoring_environment(project: Project, *, named: bool = False) -> Any:
    """The scoring ``Environment``: ``condaFile`` on ``baseImage`` (default :data:`DEFAULT_SCORING_IMAGE`)."""
    from azure.ai.ml.entities import Environment

    inference = project.inference
    conda_file = project.root / inference.condaFile
    if not conda_file.is_file():
        raise ConfigError(f"{project.root / INFERENCE_CONFIG_FILE}: field 'condaFile': {conda_file} does not exist")
    image = inference.baseImage or DEFAULT_SCORING_IMAGE
    return Environment(
        image=image,
        conda_file=str(conda_file),
        description=f"Scoring environment from {INFERENCE_CONFIG_FILE} ({conda_file.name} on {image})",
        **_name(named, f"{project.settings.model_name}-score", conda_file.read_bytes() + image.encode()),
    )


def _training_name(project: Project) -> str:
    """The training environment's name: ``environment.name`` of the run configuration, else ``<model>-train``."""
    return project.runconfig.environment.name or f"{project.settings.model_name}-train"


def _name(named: bool, name: str, content: bytes) -> dict[str, str]:
    if not named:
        return {}
    return {"name": name, "version": content_version(content)}


def job_environment(settings: ProjectSettings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ``AMLOPS_*`` variables a training job gets, so that it decides as the machine submitting it would.

    The model name always (``AMLOPS_MODEL_NAME`` may rename it here), and every data, drift and efficacy
    setting set in the submitting environment.

    Args:
        settings: The project settings (the model name).
        environ: The submitting environment (``os.environ``).
    """
    environ = os.environ if environ is None else environ
    forwarded = sorted((name, value) for name, value in environ.items() if name.startswith(JOB_SETTING_PREFIXES))
    return {"AMLOPS_MODEL_NAME": settings.model_name, **dict(forwarded)}


def step_components(project: Project, code: str | Path, environment: Any) -> dict[str, Any]:
    """The four step CLIs as command components (inputs and outputs are folders, the v2 component contract).

    Args:
        project: The parsed project files.
        code: The staged training code folder (the ``amlops`` package and ``train.py``).
        environment: The training environment.
    """
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandComponent

    python = project.interpreter
    script = project.runconfig.script
    params = hyperparameters(project.runconfig, str(project.root / RUNCONFIG_FILE), project.settings.contract)
    folder = "uri_folder"
    # Versioned by content (code snapshot, environment, command, interface): `az ml component create` of a changed
    # step makes a new version instead of conflicting with the old one.
    shared = folder_content(code) + str(environment.image).encode() + repr(environment.conda_file).encode()

    def component(step: str, description: str, command: str, inputs: dict, outputs: dict, **extra: Any) -> Any:
        interface = repr(sorted((name, repr(vars(port))) for name, port in {**inputs, **outputs}.items()))
        return CommandComponent(
            name=f"{project.prefix}_{step}",
            version=content_version(shared, description, command, interface, repr(sorted(extra.items()))),
            display_name=step,
            description=description,
            code=str(code),
            command=command,
            environment=environment,
            inputs=inputs,
            outputs=outputs,
            **extra,
        )

    return {
        "prep": component(
            "prep",
            "Validate the raw CSV, split it with a fixed seed, fingerprint it (sha256).",
            f"{python} -m amlops.steps.prep --data ${{{{inputs.data}}}} --out ${{{{outputs.prepared}}}}",
            {"data": Input(type="uri_file", description="raw CSV with the columns contract.yml names")},
            {"prepared": Output(type=folder)},
        ),
        "train": component(
            "train",
            f"{script} from {RUNCONFIG_FILE}: fit, log to MLflow, save an MLflow model folder.",
            " ".join(
                [
                    f"{python} {script} --data ${{{{inputs.prepared}}}} --out ${{{{outputs.trained}}}}",
                    *(param.binding for param in params),
                ]
            ),
            {
                "prepared": Input(type=folder),
                **{p.name: Input(type=p.input_type, default=p.value, description=f"{p.flag}") for p in params},
            },
            {"trained": Output(type=folder)},
        ),
        "evaluate": component(
            "evaluate",
            "Score the candidate and the production model on the same holdout; write the decision.",
            f"{python} -m amlops.steps.evaluate --model ${{{{inputs.trained}}}} --data ${{{{inputs.prepared}}}} "
            "--out ${{outputs.evaluation}}",
            {"trained": Input(type=folder), "prepared": Input(type=folder)},
            {"evaluation": Output(type=folder)},
            # Compares against whatever is in production now: never reuse an earlier run's answer.
            is_deterministic=False,
        ),
        "register": component(
            "register",
            "Register the candidate if the decision allows it, with metrics and lineage tags. On Azure the "
            "production marker is moved by the release (deploy), not here.",
            f"{python} -m amlops.steps.register --model ${{{{inputs.trained}}}} --decision ${{{{inputs.evaluation}}}} "
            "--data ${{inputs.prepared}} --out ${{outputs.registration}} --no-promote",
            {"trained": Input(type=folder), "evaluation": Input(type=folder), "prepared": Input(type=folder)},
            {"registration": Output(type=folder)},
            is_deterministic=False,
        ),
    }


def training_pipeline(
    project: Project, components: dict[str, Any], data: str | Path, inputs: dict[str, Any] | None = None
) -> Any:
    """The pipeline job prep → train → evaluate → register, built with ``@dsl.pipeline``.

    Building it checks every binding between steps: a reference to an output that does not exist fails here,
    offline. The data file is the pipeline's ``uri_file`` input; the hyperparameters are pipeline inputs, so the
    published pipeline can be re-run with other values; ``inputs`` overrides their defaults for this job.
    """
    from azure.ai.ml import Input, dsl

    runconfig = project.runconfig
    params = hyperparameters(runconfig, str(project.root / RUNCONFIG_FILE), project.settings.contract)

    def body(**inputs: Any) -> dict[str, Any]:
        data = inputs.pop("data")
        # The local names become the node names: prep, train, evaluate, register.
        prep = components["prep"](data=data)
        train = components["train"](prepared=prep.outputs.prepared, **inputs)
        train.set_limits(timeout=runconfig.maxRunDurationSeconds)
        if runconfig.nodeCount > 1:
            train.set_resources(instance_count=runconfig.nodeCount)
        evaluate = components["evaluate"](trained=train.outputs.trained, prepared=prep.outputs.prepared)
        register = components["register"](
            trained=train.outputs.trained, evaluation=evaluate.outputs.evaluation, prepared=prep.outputs.prepared
        )
        _set_job_environment(project.settings, prep, train, evaluate, register)
        return {
            "prepared": prep.outputs.prepared,
            "trained": train.outputs.trained,
            "evaluation": evaluate.outputs.evaluation,
            "registration": register.outputs.registration,
        }

    data_input = Input(type="uri_file", description="raw CSV with the columns contract.yml names")
    _declare(body, [("data", data_input, inspect.Parameter.empty)] + [(p.name, type(p.value), p.value) for p in params])
    builder = dsl.pipeline(
        name=project.pipeline_name,
        display_name=f"{project.settings.model_name} training",
        description="prep → train → evaluate → register (the project's step CLIs as command components)",
        default_compute=runconfig.target,
    )(body)
    check_inputs(params, inputs or {})
    job = builder(data=Input(type="uri_file", path=str(data)), **(inputs or {}))
    job.experiment_name = project.settings.experiment_name
    job.settings.continue_on_step_failure = False
    job.tags = {"model": project.settings.model_name}
    return job


def _set_job_environment(settings: ProjectSettings, *nodes: Any) -> None:
    """Give each step of a pipeline the job environment: a component cannot carry variables, its job can.

    (A function of its own: ``@dsl.pipeline`` names each node after the last local variable that held it.)
    """
    for each in nodes:
        each.environment_variables = job_environment(settings)


def check_inputs(params: list[Hyperparameter], values: dict[str, Any]) -> None:
    """Refuse values for inputs the pipeline does not have.

    Raises:
        ConfigError: naming the unknown inputs and the hyperparameters there are.
    """
    unknown = sorted(set(values) - {p.name for p in params})
    if unknown:
        raise ConfigError(f"the pipeline has no input(s) {unknown}; its hyperparameters: {[p.name for p in params]}")


def _declare(function: Callable, parameters: list[tuple[str, Any, Any]]) -> None:
    """Give ``function(**kwargs)`` a real signature, which ``@dsl.pipeline`` reads its inputs from."""
    kind = inspect.Parameter.KEYWORD_ONLY
    function.__signature__ = inspect.Signature(
        [inspect.Parameter(name, kind, default=default, annotation=hint) for name, hint, default in parameters]
    )
    function.__annotations__ = {name: annotation for name, annotation, _ in parameters}


def pipeline_component(job: Any) -> Any:
    """The pipeline as a pipeline component: what ``publish`` registers (v2's published pipeline).

    Versioned by content as its steps are (``publish`` may name another version): its steps' versions, its
    inputs with their defaults, its description.
    """
    component = job.component
    steps = sorted((name, node.component.version) for name, node in component.jobs.items())
    inputs = sorted((name, str(getattr(port, "default", None))) for name, port in component.inputs.items())
    component.version = content_version(repr(steps), repr(inputs), component.description or "")
    return component


def train_job(project: Project, code: str | Path, environment: Any, data: str | Path) -> Any:
    """``sklearn.runconfig`` as one command job: prepare the data, then run ``script`` with ``arguments``.

    ``train.py`` reads a prepared folder, so the job runs the ``prep`` step first, in the same container. (A
    ``CommandJob``, not the ``command()`` builder: the builder's ``dump`` writes a pipeline node that ``load_job``
    refuses.)
    """
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities import CommandJob, CommandJobLimits, JobResourceConfiguration

    runconfig = project.runconfig
    params = hyperparameters(runconfig, str(project.root / RUNCONFIG_FILE), project.settings.contract)
    python = project.interpreter
    train_command = " ".join(
        [
            f"{python} {runconfig.script} --data ${{{{outputs.prepared}}}} --out ${{{{outputs.trained}}}}",
            *(param.binding for param in params),
        ]
    )
    return CommandJob(
        display_name="train",
        description=f"{RUNCONFIG_FILE}: {runconfig.script} {' '.join(runconfig.argv)}",
        experiment_name=project.settings.experiment_name,
        code=str(code),
        command=f"{python} -m amlops.steps.prep --data ${{{{inputs.data}}}} --out ${{{{outputs.prepared}}}} && "
        + train_command,
        inputs={"data": Input(type="uri_file", path=str(data)), **{p.name: p.value for p in params}},
        outputs={"prepared": Output(type="uri_folder"), "trained": Output(type="uri_folder")},
        environment=environment,
        environment_variables=job_environment(project.settings),
        compute=runconfig.target,
        resources=JobResourceConfiguration(instance_count=runconfig.nodeCount),
        limits=CommandJobLimits(timeout=runconfig.maxRunDurationSeconds),
        tags={"model": project.settings.model_name},
    )


def scheduled_pipeline_job(
    project: Project, component: str, data: str | Path, inputs: dict[str, Any] | None = None
) -> Any:
    """A pipeline job that runs the published pipeline component (what a schedule creates each time).

    Args:
        project: The parsed project files.
        component: ``azureml:<name>:<version>`` (or ``@latest``) of the published pipeline component.
        data: The ``uri_file`` the runs train on.
        inputs: Other inputs of the component to set (hyperparameters by name). They are given to the job as it
            is built: the SDK wraps each as a job input then, and a value added to ``job.inputs`` afterwards stays
            a bare number that ``jobs.validate`` cannot serialise.
    """
    from azure.ai.ml import Input
    from azure.ai.ml.entities import PipelineJob

    return PipelineJob(
        component=component,
        display_name=f"{project.settings.model_name} training (scheduled)",
        inputs={**(inputs or {}), "data": Input(type="uri_file", path=str(data))},
        experiment_name=project.settings.experiment_name,
        settings={"default_compute": project.runconfig.target},
        tags={"model": project.settings.model_name},
    )


def training_schedule(project: Project, job: Any, cron: str, *, enabled: bool = False) -> Any:
    """A schedule running ``job`` on ``cron`` (UTC); disabled unless ``enabled``, for someone to switch on."""
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    return JobSchedule(
        name=schedule_name(project),
        display_name=f"{project.settings.model_name} training ({cron} UTC)",
        trigger=CronTrigger(expression=cron, time_zone="UTC"),
        create_job=job,
        is_enabled=enabled,
    )


def schedule_name(project: Project) -> str:
    """The training schedule's name: the pipeline's, with ``_schedule``."""
    return f"{project.pipeline_name}_schedule"


def data_asset_name(project: Project) -> str:
    """The training data asset's default name: the model's, with ``-training-data``."""
    return f"{project.settings.model_name}-training-data"
