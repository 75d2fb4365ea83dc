"""The training data: its schema, loading, validation, splitting and fingerprinting."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from amlops.core.errors import BadInputError

if TYPE_CHECKING:  # pandera and scikit-learn are imported where used: listing models needs neither
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

#: Feature columns in the order the model expects them (scikit-learn's raw diabetes data).
FEATURES: tuple[str, ...] = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
TARGET = "target"

#: Plausible physical bounds per column; wider than the snapshot, narrow enough to catch unit errors.
RANGES: dict[str, tuple[float, float]] = {
    "age": (0.0, 120.0),
    "bmi": (10.0, 80.0),
    "bp": (40.0, 250.0),
    "s1": (50.0, 500.0),
    "s2": (10.0, 400.0),
    "s3": (5.0, 200.0),
    "s4": (0.5, 15.0),
    "s5": (2.0, 8.0),
    "s6": (30.0, 200.0),
    TARGET: (0.0, 500.0),
}
SEX_VALUES = (1.0, 2.0)


class DataValidationError(BadInputError, ValueError):
    """The data broke one or more schema rules; ``failures`` names each column and rule."""

    def __init__(self, source: str, failures: list[dict[str, str]]):
        self.source = source
        self.failures = failures
        lines = [f"  - column {f['column']!r}: {f['rule']} ({f['detail']})" for f in failures]
        super().__init__(f"{source}: data failed validation:\n" + "\n".join(lines))


@dataclass(frozen=True)
class Fingerprint:
    """Identity of a data file: its sha256, row count and columns."""

    sha256: str
    rows: int
    columns: list[str]
    source: str


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema(min_rows: int) -> pa.DataFrameSchema:
    """The declared schema of the training table.

    Args:
        min_rows: Fewest rows a usable training table may have.
    """
    import pandera.pandas as pa

    columns = {
        name: pa.Column(
            float,
            checks=pa.Check.in_range(*RANGES[name]),
            nullable=False,
            coerce=True,
        )
        for name in RANGES
    }
    columns["sex"] = pa.Column(float, checks=pa.Check.isin(SEX_VALUES), nullable=False, coerce=True)
    ordered = {name: columns[name] for name in (*FEATURES, TARGET)}
    return pa.DataFrameSchema(
        ordered,
        strict=True,
        checks=pa.Check(lambda df: len(df) >= min_rows, name=f"min_rows({min_rows})"),
    )


#: Plain words for pandera's structural checks, whose failure case is the column name itself.
_STRUCTURAL = {
    "column_in_dataframe": "required column is missing",
    "column_in_schema": "column is not part of the schema",
}


def _failures(errors: SchemaErrors, rows: int) -> list[dict[str, str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in errors.failure_cases.itertuples(index=False):
        check = str(row.check)
        value = None if row.failure_case is None or pd.isna(row.failure_case) else row.failure_case
        if check in _STRUCTURAL:
            found.setdefault((str(value), check), []).append(_STRUCTURAL[check])
            continue
        if check.startswith("min_rows"):
            found[("<table>", check)] = [f"the table has {rows} rows"]
            continue
        column = "<table>" if row.column is None or pd.isna(row.column) else str(row.column)
        where = "" if row.index is None or pd.isna(row.index) else f"row {int(row.index)}"
        example = " ".join(part for part in (where, "" if value is None else repr(value)) if part)
        found.setdefault((column, check), []).append(example)
    # A value that cannot be read as a number fails every later check of its column: report only that.
    unreadable = {column for column, rule in found if rule.startswith("coerce_dtype")}
    result = []
    for (column, rule), examples in found.items():
        if column in unreadable and not rule.startswith("coerce_dtype"):
            continue
        if rule in _STRUCTURAL or rule.startswith("min_rows"):
            result.append({"column": column, "rule": rule, "detail": examples[0]})
            continue
        shown = [e for e in examples if e][:3]
        detail = f"{len(examples)} failing value(s)" + (f", e.g. {'; '.join(shown)}" if shown else "")
        result.append({"column": column, "rule": rule, "detail": detail})
    return result


def validate(frame: pd.DataFrame, *, min_rows: int, source: str = "data") -> pd.DataFrame:
    """Validate a raw table against the schema and return it with float columns in schema order.

    Args:
        frame: The raw table.
        min_rows: Fewest rows allowed.
        source: Name of the data used in error messages (usually the file path).

    Raises:
        DataValidationError: naming every failing column and rule.
    """
    from pandera.errors import SchemaErrors

    try:
        with warnings.catch_warnings():
            # pandera's own failure-report assembly trips a pandas FutureWarning; not the user's concern.
            warnings.filterwarnings("ignore", category=FutureWarning, module="pandera")
            return schema(min_rows).validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise DataValidationError(source, _failures(errors, len(frame))) from None


def load_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file as given (validation is a separate step)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    return pd.read_csv(path)


def fingerprint(path: Path, frame: pd.DataFrame) -> Fingerprint:
    """Describe a data file so that a model's lineage can name exactly what it was trained on."""
    return Fingerprint(sha256=sha256_file(path), rows=len(frame), columns=list(frame.columns), source=str(path))


def split(frame: pd.DataFrame, *, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test tables, deterministically for a given seed."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(frame, test_size=test_size, random_state=seed, shuffle=True)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Separate the feature matrix (in model order) from the target."""
    return frame.loc[:, list(FEATURES)], frame[TARGET]


def write_csv_with_sha256(frame: pd.DataFrame, path: Path) -> str:
    """Write a table as CSV with deterministic bytes, and its sha256 beside it (``<name>.sha256``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")
    digest = sha256_file(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def write_snapshot(path: Path) -> str:
    """Write scikit-learn's diabetes data set (raw units) as a CSV and return its sha256.

    The bytes are deterministic, so the recorded checksum proves the committed file is unchanged.
    """
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.loc[:, [*FEATURES, TARGET]]
    return write_csv_with_sha256(frame, path)


#: Seed and noise of :func:`write_shifted_fixture` (changing either changes the committed fixture's bytes).
SHIFTED_SEED = 2026
SHIFTED_NOISE = 1.0


def write_shifted_fixture(path: Path, *, seed: int = SHIFTED_SEED, noise: float = SHIFTED_NOISE) -> str:
    """Write newer labelled data whose target relationship changed (concept drift), and return its sha256.

    The diabetes features are kept as they are; the target values are the same 442 numbers, reassigned to the
    patients in the order of a *different* relationship: ``s5 + bp - bmi`` (standardised) plus Gaussian noise of
    standard deviation ``noise`` from ``numpy.random.default_rng(seed)``. The higher a patient's new score, the
    higher the progression value it receives. Body mass index, the strongest predictor the model learned, now
    counts the other way, so the production model degrades (RMSE about 77 instead of 54, R² about 0), while every
    column's distribution, the target's included, is exactly that of the snapshot: the schema and the drift check
    in ``prep`` both pass, and only an efficacy check on labelled data can see the change. A model retrained on it
    reaches R² of about 0.6.

    The bytes are deterministic (same seed and noise, same file), written like :func:`write_snapshot`.
    """
    import numpy as np
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.loc[:, [*FEATURES, TARGET]]
    standard = (frame - frame.mean()) / frame.std()
    score = standard["s5"] + standard["bp"] - standard["bmi"]
    score = score.to_numpy() + noise * np.random.default_rng(seed).standard_normal(len(frame))
    rank = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    frame[TARGET] = np.sort(frame[TARGET].to_numpy())[rank]
    return write_csv_with_sha256(frame, path)
