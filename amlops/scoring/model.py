"""Loading the model for serving: the MLflow model folder, its signature, and the estimator or its fast path."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import yaml

from amlops.core.errors import BadInputError
from amlops.scoring.linear import LinearPipeline, read_linear_pipeline
from amlops.scoring.rules import Rules

#: Whose types a model file may hold beyond those skops trusts by default (a forest's ``sklearn.tree._tree.Tree``,
#: say): scikit-learn's, NumPy's and SciPy's own. Nothing else is loaded, a function of the user's included.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")
#: What a saved model needs to load and predict. A model folder records their versions (``requirements.txt``);
#: it is served only where the same versions are installed.
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "skops")


class LibraryMismatchError(ValueError):
    """A model was trained with other versions of the libraries it needs than this environment has."""


class UntrustedModelError(BadInputError, ValueError):
    """A model holds types from outside scikit-learn, NumPy and SciPy, which the endpoint does not load."""


class LoadedModel:
    """A fitted model with what the service needs to know about it.

    Attributes:
        features: Input column names, in model order (the MLflow signature).
        name: Registered model name reported in responses.
        version: Registered version reported in responses.
        model_file: The skops file.
        linear: The model as a :class:`LinearPipeline` when it is one, else ``None``.
        rules: The ranges and categories of the columns the model was trained under, if it recorded them.
    """

    def __init__(
        self,
        features: tuple[str, ...],
        name: str,
        version: str,
        model_file: Path,
        linear: LinearPipeline | None = None,
        estimator: Any = None,
        rules: Rules | None = None,
    ):
        self.features = tuple(features)
        self.name = name
        self.version = version
        self.model_file = Path(model_file)
        self.linear = linear
        self._estimator = estimator
        self.rules = rules

    @property
    def classes(self) -> list | None:
        """A classifier's class labels in their own type (strings stay strings), or ``None`` for a regressor."""
        if self.linear is not None:  # the fast path serves regressions only
            return None
        classes = getattr(self.estimator, "classes_", None)
        return None if classes is None else classes.tolist()

    @property
    def estimator(self) -> Any:
        """The scikit-learn estimator, loaded by skops (on first use when the linear fast path serves)."""
        if self._estimator is None:
            self._estimator = load_estimator(self.model_file)
        return self._estimator

    def __repr__(self) -> str:
        path = "linear" if self.linear is not None else "estimator"
        return f"LoadedModel({self.name!r}, {self.version!r}, {len(self.features)} features, {path})"


def find_mlmodel_dir(model_dir: Path) -> Path:
    """Return the folder holding the ``MLmodel`` file: ``model_dir`` itself or its only child that has one.

    Azure ML mounts a registered folder model as ``$AZUREML_MODEL_DIR/<folder name>/``.
    """
    model_dir = Path(model_dir)
    if (model_dir / "MLmodel").is_file():
        return model_dir
    found = sorted(p.parent for p in model_dir.glob("*/MLmodel"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{model_dir}: expected one MLflow model folder (with an MLmodel file), found {len(found)}"
        )
    return found[0]


def read_signature_features(mlmodel: dict, source: Path) -> tuple[str, ...]:
    """Feature names, in order, from the ``signature.inputs`` of a parsed ``MLmodel`` file."""
    try:
        inputs = json.loads(mlmodel["signature"]["inputs"])
        return tuple(column["name"] for column in inputs)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{source}: MLmodel has no usable column signature ({error})") from None


def check_libraries(folder: Path) -> None:
    """Refuse a model trained with other versions of :data:`MODEL_LIBRARIES` than this environment has.

    The versions come from the ``requirements.txt`` MLflow writes beside the model. Another scikit-learn may load
    the same file and predict differently, so a mismatch is refused rather than served.

    Raises:
        LibraryMismatchError: naming each library, the version the model was trained with and the one installed.
    """
    path = Path(folder) / "requirements.txt"
    if not path.is_file():
        return  # not saved by MLflow: nothing recorded to compare
    mismatched = []
    for line in path.read_text().splitlines():
        name, _, trained = line.partition("==")
        if name.strip().lower() not in MODEL_LIBRARIES or not trained:
            continue
        try:
            here = installed_version(name.strip())
        except PackageNotFoundError:
            here = "not installed"
        if here != trained.strip():
            mismatched.append(f"{name.strip()} {trained.strip()} (here: {here})")
    if mismatched:
        raise LibraryMismatchError(
            f"{path}: the model was trained with {', '.join(mismatched)}; serve it where the versions it was "
            "trained with are installed (requirements.lock pins one version of each for every supported Python), "
            "or train it again here"
        )


def trusted_types(untrusted: Iterable[str], source: str) -> list[str]:
    """The types skops does not trust by default that a model may hold: each, if all are in :data:`TRUSTED_MODULES`.

    Args:
        untrusted: ``skops.io.get_untrusted_types`` of a model file.
        source: What holds them, for the message.

    Raises:
        UntrustedModelError: naming the types from anywhere else.
    """
    untrusted = sorted(untrusted)
    refused = [name for name in untrusted if not name.startswith(TRUSTED_MODULES)]
    if refused:
        raise UntrustedModelError(
            f"{source}: holds types from outside scikit-learn, NumPy and SciPy, which the endpoint refuses to load: "
            f"{', '.join(refused)} (build the model from scikit-learn's estimators and NumPy's functions: "
            "FunctionTransformer(np.log1p), not a function of your own)"
        )
    return untrusted


def load_estimator(model_path: Path) -> Any:
    """Load a skops-serialised estimator, trusting only scikit-learn, NumPy and SciPy types."""
    import skops.io as sio

    return sio.load(model_path, trusted=trusted_types(sio.get_untrusted_types(file=model_path), str(model_path)))


def load_model(model_dir: Path, name: str = "", version: str = "") -> LoadedModel:
    """Load an MLflow scikit-learn model folder without importing MLflow.

    Args:
        model_dir: The MLflow model folder, or a folder containing exactly one.
        name: Registered model name reported in responses.
        version: Registered version reported in responses.
    """
    folder = find_mlmodel_dir(model_dir)
    mlmodel_path = folder / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ValueError(f"{mlmodel_path}: not a scikit-learn MLflow model (no 'sklearn' flavor)")
    if flavor.get("serialization_format") != "skops":
        raise ValueError(
            f"{mlmodel_path}: serialization_format is {flavor.get('serialization_format')!r}; "
            "only 'skops' is loaded (pickle is unsafe to load)"
        )
    features = read_signature_features(mlmodel, mlmodel_path)
    check_libraries(folder)
    model_file = folder / flavor["pickled_model"]
    linear = read_linear_pipeline(model_file)
    rules = Rules.read(folder)
    if linear is not None and linear.n_features == len(features):
        return LoadedModel(features, name, version, model_file, linear=linear, rules=rules)
    return LoadedModel(features, name, version, model_file, estimator=load_estimator(model_file), rules=rules)


def model_identity(model_dir: Path) -> tuple[str, str]:
    """Name and version from an Azure ML style path ``.../azureml-models/<name>/<version>``."""
    path = Path(model_dir).resolve()
    return path.parent.name, path.name
