"""The training data: its schema, loading, validation, splitting and fingerprinting."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from amlops.core.contract import Column, Contract
from amlops.core.errors import BadInputError

if TYPE_CHECKING:  # pandera and scikit-learn are imported where used: listing models needs neither
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors


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


_DTYPES = {"float": float, "int": int, "str": str}


def _column(column: Column) -> pa.Column:
    import pandera.pandas as pa

    checks = []
    if column.range is not None:
        checks.append(pa.Check.in_range(*column.range))
    if column.categories is not None:
        checks.append(pa.Check.isin(list(column.categories)))
    if column.type == "int":  # read as numbers and checked: coercing 127.5 to int would make it 127, silently
        checks.append(pa.Check(lambda values: values % 1 == 0, name="whole_number"))
        return pa.Column(float, checks=checks, nullable=False, coerce=True)
    return pa.Column(_DTYPES[column.type], checks=checks, nullable=False, coerce=True)


def schema(contract: Contract, min_rows: int) -> pa.DataFrameSchema:
    """The declared schema of the training table: the contract's features, then its target.

    Args:
        contract: The data and model contract (types, ranges and categories per column).
        min_rows: Fewest rows a usable training table may have.
    """
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {name: _column(column) for name, column in contract.columns.items()},
        strict=True,
        checks=pa.Check(lambda df: len(df) >= min_rows, name=f"min_rows({min_rows})"),
    )


#: Plain words for pandera's structural checks, whose failure case is the column name itself.
_STRUCTURAL = {
    "column_in_dataframe": "required column is missing: contract.yml declares it",
    "column_in_schema": "contract.yml declares no such column: remove it from the file",
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


def validate(frame: pd.DataFrame, contract: Contract, *, min_rows: int, source: str = "data") -> pd.DataFrame:
    """Validate a raw table against the contract and return it with typed columns in contract order.

    Args:
        frame: The raw table.
        contract: The data and model contract.
        min_rows: Fewest rows allowed.
        source: Name of the data used in error messages (usually the file path).

    Raises:
        DataValidationError: naming every failing column and rule.
    """
    from pandera.errors import SchemaErrors

    separator = _other_separator(frame, contract)
    if separator:
        detail = f"the file is separated by {separator!r}, not ',': save it as a comma-separated CSV"
        raise DataValidationError(source, [{"column": "<table>", "rule": "comma_separated", "detail": detail}])
    try:
        with warnings.catch_warnings():
            # pandera's own failure-report assembly trips a pandas FutureWarning; not the user's concern.
            warnings.filterwarnings("ignore", category=FutureWarning, module="pandera")
            valid = schema(contract, min_rows).validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise DataValidationError(source, _failures(errors, len(frame))) from None
    whole = {name: "int64" for name, column in contract.columns.items() if column.type == "int"}
    return valid.astype(whole) if whole else valid


def _other_separator(frame: pd.DataFrame, contract: Contract) -> str | None:
    """The separator of a file read as one column because it is not comma-separated (Excel's ``;``, a tab)."""
    if len(frame.columns) != 1 or frame.columns[0] in contract.columns:
        return None
    return next((separator for separator in (";", "\t", "|") if separator in str(frame.columns[0])), None)


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


def features_and_target(frame: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.Series]:
    """Separate the features (in model order) from the target."""
    return frame.loc[:, list(contract.feature_names)], frame[contract.target.name]


def write_csv_with_sha256(frame: pd.DataFrame, path: Path) -> str:
    """Write a table as CSV with deterministic bytes, and its sha256 beside it (``<name>.sha256``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")
    return write_sha256(path)


def write_sha256(path: Path) -> str:
    """Record a file's sha256 beside it (``<name>.sha256``, as ``sha256sum`` writes it) and return it."""
    path = Path(path)
    digest = sha256_file(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest
