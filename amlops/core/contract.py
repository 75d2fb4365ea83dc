"""The data and model contract (``contract.yml``): what the model is called, what it reads and how it is judged.

One declarative file describes the user's model; the package derives the rest from it: the registered model,
experiment and pipeline names, the data schema that ``prep`` enforces, the metric the gate and the efficacy
check compare, and the hyperparameters ``train.py`` accepts. ``docs/your-model.md`` explains every field.

This module imports nothing heavy (YAML and pydantic only): the scoring side reads the contract too.
"""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from amlops.core.errors import BadInputError

#: The contract's file name in the project root.
CONTRACT_FILE = "contract.yml"
#: Names the registry, Azure ML and URLs all accept: lower-case letters, digits and dashes.
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"

Task = Literal["regression", "classification"]
FeatureType = Literal["float", "int", "str"]
Direction = Literal["minimize", "maximize"]

#: The metrics the package measures for each task (``amlops.ml.metrics``), and which way is better.
#: ``log_loss`` needs an estimator with ``predict_proba``.
METRICS: dict[str, dict[str, Direction]] = {
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize"},
    "classification": {
        "accuracy": "maximize",
        "balanced_accuracy": "maximize",
        "f1_macro": "maximize",
        "log_loss": "minimize",
    },
}


#: ``"metric: ..."``: a message of a check across fields, naming the field it is about.
_NAMED_FIELD = re.compile(r"^(?P<field>[a-z_]+): (?P<message>.+)$", re.DOTALL)


class ContractError(BadInputError):
    """The contract file is missing, unreadable or has a wrong field (the message names the file and field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One column of the training table: its type, and the values it may take."""

    name: str = Field(min_length=1, description="Column name in the CSV and in a scoring request.")
    type: FeatureType = Field(default="float", description="float, int or str.")
    range: tuple[float, float] | None = Field(
        default=None, description="Inclusive [low, high] bounds of a numeric column (plausible values, not the data's)."
    )
    categories: tuple[float | int | str, ...] | None = Field(
        default=None, min_length=1, description="The only values the column may take."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if self.range is not None:
            if self.type == "str":
                raise ValueError("range: a str column has no range; list its categories instead")
            if self.range[0] > self.range[1]:
                raise ValueError(f"range: low {self.range[0]} is above high {self.range[1]}")
        if self.type == "str" and self.categories and not all(isinstance(c, str) for c in self.categories):
            raise ValueError("categories: a str column's categories must be strings (quote them)")
        if self.type != "str" and self.categories and any(isinstance(c, str) for c in self.categories):
            raise ValueError(f"categories: a {self.type} column's categories must be numbers")
        return self


class Metric(_Strict):
    """The primary metric: what the gate and the efficacy check compare, and which way is better."""

    name: str = Field(min_length=1, description="One of the task's metrics: rmse, mae, r2; accuracy, f1_macro...")
    direction: Direction = Field(description="minimize (errors) or maximize (scores).")

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` for this metric."""
        return value < than if self.direction == "minimize" else value > than


class Limit(_Strict):
    """Bounds a metric must meet on the holdout: ``min``, ``max`` or both."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _something(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("a limit needs min, max or both")
        return self

    def breach(self, name: str, value: float) -> str | None:
        """Why ``value`` breaks this limit, or ``None`` when it does not."""
        if self.max is not None and value > self.max:
            return f"{name} {value:.4g} is above the ceiling {self.max}"
        if self.min is not None and value < self.min:
            return f"{name} {value:.4g} is below the floor {self.min}"
        return None


class Gate(_Strict):
    """What a candidate must meet before it may replace production."""

    limits: dict[str, Limit] = Field(default_factory=dict, description="Absolute bounds per metric on the holdout.")
    min_improvement: float = Field(
        default=0.005, ge=0, description="Relative improvement of the primary metric over production (0.005 = 0.5%)."
    )

    def breaches(self, measured: dict[str, float]) -> list[str]:
        """Why ``measured`` breaks the limits, one reason per broken limit (empty when all are met)."""
        reasons = (limit.breach(name, measured[name]) for name, limit in self.limits.items())
        return [reason for reason in reasons if reason is not None]


class Param(_Strict):
    """A hyperparameter ``train.py`` accepts, with its default."""

    type: Literal["float", "int", "str", "bool"] = "float"
    default: float | int | str | bool
    search: tuple[float | int | str | bool, ...] | None = Field(
        default=None, min_length=1, description="The values notebook 00 compares; without it, only the default."
    )
    help: str = ""

    @field_validator("default", "search", mode="before")
    @classmethod
    def _no_null(cls, value: object, info: ValidationInfo) -> object:
        if (value is None and info.field_name == "default") or (isinstance(value, list | tuple) and None in value):
            raise ValueError(
                "null is not a value train.py can be given on every target (Azure ML inputs have none): declare a "
                "value that stands for it and map it in build(), e.g. 0 for max_depth and `max_depth or None`"
            )
        return value

    @field_validator("default", "search")
    @classmethod
    def _values_have_the_type(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("type", "float")
        if value is None or isinstance(value, tuple):
            return None if value is None else tuple(_typed(kind, item) for item in value)
        return _typed(kind, value)

    def typed(self, value: float | int | str | bool) -> float | int | str | bool:
        """A value (text, or YAML's ``1`` for a float parameter) as the parameter's type."""
        return _typed(self.type, value)

    def parse(self, text: str) -> float | int | str | bool:
        """A value given as text (``--max-depth 4``, ``--param max_depth=4``) as the parameter's type.

        Raises:
            ValueError: the text is not a value of that type.
        """
        return _parse(self.type, text)


def _typed(kind: str, value: float | int | str | bool) -> float | int | str | bool:
    return _parse(kind, str(value).lower() if isinstance(value, bool) else str(value))


def _parse(kind: str, text: str) -> float | int | str | bool:
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return {"float": float, "int": int, "str": str}[kind](text)
    except ValueError:
        raise ValueError(f"expected a value of type {kind}, got {text!r}") from None


class Contract(_Strict):
    """The whole contract file."""

    name: str = Field(pattern=NAME_PATTERN, description="Registered model name; other names derive from it.")
    description: str = Field(default="", description="One line shown in the registry.")
    data: Path = Field(description="The training data snapshot, relative to the project root.")
    task: Task
    target: Column
    features: tuple[Column, ...] = Field(min_length=1)
    metric: Metric
    gate: Gate = Field(default_factory=Gate)
    params: dict[str, Param] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _relative(cls, value: Path) -> Path:
        if value.is_absolute():
            raise ValueError("give the path relative to the project root")
        return value

    @model_validator(mode="after")
    def _columns(self) -> Contract:
        names = [column.name for column in (*self.features, self.target)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"features: each column is named once (repeated: {', '.join(repeated)})")
        text = [column.name for column in self.features if column.type == "str"]
        if text:
            raise ValueError(
                f"features: {', '.join(text)}: the model and the endpoint take numbers; encode text categories as "
                "numbers (the target of a classification may be text)"
            )
        if self.task == "classification" and self.target.range is not None:
            raise ValueError("target: a classification target has categories, not a range")
        known = METRICS[self.task]
        if self.metric.name not in known:
            raise ValueError(f"metric: {self.task} measures {', '.join(known)}; not {self.metric.name!r}")
        if known[self.metric.name] != self.metric.direction:
            raise ValueError(
                f"metric: the direction of {self.metric.name} is {known[self.metric.name]}, not {self.metric.direction}"
            )
        unknown = sorted(set(self.gate.limits) - set(known))
        if unknown:
            raise ValueError(f"gate: {self.task} measures {', '.join(known)}; no limit on {', '.join(unknown)}")
        for name in self.params:
            if not name.isidentifier():
                raise ValueError(f"params: {name!r} is not a Python identifier (train.py receives it as one)")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature columns in the order the model takes them."""
        return tuple(column.name for column in self.features)

    @property
    def columns(self) -> dict[str, Column]:
        """Every column of the training table by name, features first, the target last."""
        return {column.name: column for column in (*self.features, self.target)}

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment training runs log to."""
        return self.name

    @property
    def pipeline_name(self) -> str:
        """The training pipeline's name (local published pipelines, Azure ML pipeline jobs)."""
        return f"{self.name}-training"

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric measured for the task, the primary one first."""
        return (self.metric.name, *(name for name in METRICS[self.task] if name != self.metric.name))

    def defaults(self) -> dict[str, float | int | str | bool]:
        """Every hyperparameter's default value."""
        return {name: param.default for name, param in self.params.items()}

    def candidates(self) -> list[dict[str, float | int | str | bool]]:
        """Every combination of the hyperparameters' ``search`` values (the default where a parameter has none)."""
        names = list(self.params)
        choices = [self.params[name].search or (self.params[name].default,) for name in names]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*choices)]

    def hyperparameters(
        self, values: dict[str, object], *, defaults: bool = True
    ) -> dict[str, float | int | str | bool]:
        """The defaults (unless told not to) with ``values`` (text or typed) replacing some, each of its declared type.

        Raises:
            ContractError: naming an unknown parameter or a value of the wrong type.
        """
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ContractError(f"unknown hyperparameter(s) {', '.join(unknown)}; contract.yml declares: {known}")
        chosen = self.defaults() if defaults else {}
        for name, value in values.items():
            try:
                chosen[name] = self.params[name].typed(value)
            except ValueError as error:
                raise ContractError(f"hyperparameter {name}: {error}") from None
        return chosen


def load(path: Path) -> Contract:
    """Read and check a contract file.

    Raises:
        ContractError: naming the file and each wrong field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: no contract file (docs/your-model.md says what it holds)") from None
    return _parsed(str(path), text)


def in_root(root: Path) -> Contract:
    """The contract of the project in ``root``."""
    return load(Path(root) / CONTRACT_FILE)


@functools.lru_cache(maxsize=8)
def _parsed(source: str, text: str) -> Contract:
    """The contract in ``text``; parsed once per content (a file time stamp can miss an edit made within a tick)."""
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ContractError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ContractError(f"{source}: expected a mapping of fields, found {type(content).__name__}")
    try:
        return Contract.model_validate(content)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            location = [str(part) for part in item["loc"]]
            message = str(item["msg"]).removeprefix("Value error, ")
            named = _NAMED_FIELD.match(message)
            if named:  # a check across fields names the field it is about at the start of its message
                location, message = [*location, named["field"]], named["message"]
            lines.append(f"{source}: field '{'.'.join(location) or '<file>'}': {message}")
        raise ContractError("\n".join(lines)) from None
