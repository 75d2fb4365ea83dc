"""How the example's data files were made: ``python data/make_dataset.py`` rewrites them, byte for byte.

The example only. With your own model, replace ``diabetes.csv`` with your CSV, name it in ``contract.yml``
and record its checksum with ``python -m amlops snapshot``; this script can go.

- ``data/diabetes.csv``: scikit-learn's diabetes data in raw units (the training snapshot).
- ``data/fixtures/diabetes_shifted.csv``: newer labelled data whose target relationship changed, for the
  efficacy check (``python -m amlops models check --data data/fixtures/diabetes_shifted.csv``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes

from amlops.ml.data import write_csv_with_sha256

HERE = Path(__file__).resolve().parent
#: Seed and noise of :func:`write_shifted_fixture` (changing either changes the committed fixture's bytes).
SHIFTED_SEED = 2026
SHIFTED_NOISE = 1.0


def diabetes() -> pd.DataFrame:
    """scikit-learn's diabetes data in raw units, the target last."""
    return load_diabetes(as_frame=True, scaled=False).frame


def write_snapshot(path: Path) -> str:
    """Write the diabetes data as a CSV and return its sha256 (the bytes are deterministic)."""
    return write_csv_with_sha256(diabetes(), path)


def write_shifted_fixture(path: Path, *, seed: int = SHIFTED_SEED, noise: float = SHIFTED_NOISE) -> str:
    """Write newer labelled data whose target relationship changed (concept drift), and return its sha256.

    The features are kept as they are; the target values are the same 442 numbers, reassigned to the patients
    in the order of a *different* relationship: ``s5 + bp - bmi`` (standardised) plus Gaussian noise of standard
    deviation ``noise`` from ``numpy.random.default_rng(seed)``. Body mass index, the strongest predictor the
    model learned, now counts the other way, so the production model degrades (RMSE about 77 instead of 54, R²
    about 0), while every column's distribution, the target's included, is exactly that of the snapshot: the
    schema and the drift check in ``prep`` both pass, and only an efficacy check on labelled data can see the
    change. A model retrained on it reaches R² of about 0.6.
    """
    frame = diabetes()
    standard = (frame - frame.mean()) / frame.std()
    score = standard["s5"] + standard["bp"] - standard["bmi"]
    score = score.to_numpy() + noise * np.random.default_rng(seed).standard_normal(len(frame))
    rank = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    frame["target"] = np.sort(frame["target"].to_numpy())[rank]
    return write_csv_with_sha256(frame, path)


def main(argv: list[str] | None = None) -> int:
    """Rewrite both files (or those named) and print their checksums."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: data/)")
    args = cli.parse_args(argv)
    print(write_snapshot(args.out / "diabetes.csv"), args.out / "diabetes.csv")  # noqa: T201 - a script's output
    shifted = args.out / "fixtures" / "diabetes_shifted.csv"
    print(write_shifted_fixture(shifted), shifted)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
