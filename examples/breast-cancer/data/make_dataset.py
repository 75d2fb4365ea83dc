"""How ``breast_cancer.csv`` was made: ``python data/make_dataset.py`` rewrites it, byte for byte.

scikit-learn's breast cancer data (Wisconsin): the ten "mean" measurements, renamed to identifiers, and the
diagnosis as its label, ``malignant`` or ``benign``. ``--out DIR`` writes it into another folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.datasets import load_breast_cancer

from amlops.ml.data import write_csv_with_sha256

HERE = Path(__file__).resolve().parent


def write_snapshot(path: Path) -> str:
    """Write the CSV and its sha256 beside it; return the sha256."""
    loaded = load_breast_cancer(as_frame=True)
    frame = loaded.frame
    means = [name for name in frame.columns if name.startswith("mean ")]
    table = frame.loc[:, means].rename(columns=lambda name: name.replace(" ", "_"))
    table["diagnosis"] = [str(loaded.target_names[label]) for label in frame["target"]]
    return write_csv_with_sha256(table, path)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the CSV and print its checksum."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: data/)")
    args = cli.parse_args(argv)
    print(write_snapshot(args.out / "breast_cancer.csv"), args.out / "breast_cancer.csv")  # noqa: T201 - a script's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
