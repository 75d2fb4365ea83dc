"""Step ``prep``: load the raw CSV, validate it, split it, fingerprint it.

Outputs (in ``--out``): ``train.csv``, ``test.csv``, ``fingerprint.json``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from amlops.core.contract import Contract
from amlops.core.files import write_json
from amlops.core.logs import run_step
from amlops.core.settings import DataSettings, DriftSettings, ProjectSettings
from amlops.ml import data, drift

log = logging.getLogger("amlops.steps.prep")  # not __main__ when run with -m

TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"
FINGERPRINT_FILE = "fingerprint.json"


def prepare(
    frame: pd.DataFrame,
    contract: Contract,
    rules: DataSettings,
    source: str,
    reference: pd.DataFrame | None = None,
    drift_rules: DriftSettings | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a raw table, check it for drift against a reference, and split it into train and test tables.

    Args:
        frame: The raw table.
        contract: The data and model contract (the schema).
        rules: Minimum rows, test fraction and split seed.
        source: Name of the data for error messages.
        reference: The reference table (the committed snapshot); no drift check when ``None``.
        drift_rules: Drift thresholds.

    Raises:
        DataValidationError: when any column breaks a schema rule.
        DataDriftError: when any column drifted beyond the thresholds.
    """
    valid = data.validate(frame, contract, min_rows=rules.min_rows, source=source)
    drift_rules = drift_rules or DriftSettings()
    if reference is not None and drift_rules.enabled:
        measured = drift.check(reference, valid, drift_rules, source)
        worst = max(measured, key=lambda d: d.psi)
        log.info(
            "prep: no drift (largest PSI %.3f on %r, largest KS %.3f)",
            worst.psi,
            worst.column,
            max(d.ks for d in measured),
        )
    return data.split(valid, test_size=rules.test_size, seed=rules.seed)


def load_reference(path: Path, contract: Contract, rules: DataSettings) -> pd.DataFrame | None:
    """The validated reference snapshot, or ``None`` (with a warning) where it is not shipped."""
    if not Path(path).is_file():
        log.warning("prep: no reference snapshot at %s; drift check skipped", path)
        return None
    return data.validate(data.load_csv(path), contract, min_rows=rules.min_rows, source=str(path))


def run(data_path: Path, out: Path, rules: DataSettings | None = None, reference_path: Path | None = None) -> dict:
    """Run the step on files: read ``data_path``, write the splits and fingerprint to ``out``.

    Args:
        data_path: The raw CSV.
        out: Output folder.
        rules: Data rules; read from the environment when omitted.
        reference_path: Drift reference; the committed snapshot when omitted.

    Returns:
        The fingerprint record written to ``fingerprint.json``.
    """
    rules = rules or DataSettings()
    drift_rules = DriftSettings()
    settings = ProjectSettings()
    data_path, out = Path(data_path), Path(out)
    frame = data.load_csv(data_path)
    reference = None
    if drift_rules.enabled:
        reference = load_reference(reference_path or settings.data_snapshot, settings.contract, rules)
    train, test = prepare(
        frame, settings.contract, rules, source=str(data_path), reference=reference, drift_rules=drift_rules
    )
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(out / TRAIN_FILE, index=False)
    test.to_csv(out / TEST_FILE, index=False)
    record = asdict(data.fingerprint(data_path, frame)) | {
        "train_rows": len(train),
        "test_rows": len(test),
        "split_seed": rules.seed,
        "test_size": rules.test_size,
    }
    write_json(out / FINGERPRINT_FILE, record)
    log.info(
        "prep: %s rows valid (sha256 %s…), %d train / %d test",
        record["rows"],
        record["sha256"][:12],
        len(train),
        len(test),
    )
    return record


def load_splits(prepared: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the train and test tables a ``prep`` run wrote."""
    prepared = Path(prepared)
    return data.load_csv(prepared / TRAIN_FILE), data.load_csv(prepared / TEST_FILE)


def parser() -> argparse.ArgumentParser:
    """Command-line interface of the step."""
    cli = argparse.ArgumentParser(prog="prep", description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, default=None, help="CSV to prepare (default: the data/ snapshot)")
    cli.add_argument("--out", type=Path, required=True, help="output folder")
    cli.add_argument("--reference", type=Path, default=None, help="drift reference CSV (default: the snapshot)")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m amlops.steps.prep --data raw.csv --out prepared/``."""
    args = parser().parse_args(argv)
    run(args.data or ProjectSettings().data_snapshot, args.out, reference_path=args.reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_step(main))
