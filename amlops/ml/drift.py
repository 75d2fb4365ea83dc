"""Distribution drift of incoming training data against the reference snapshot.

Schema checks catch impossible values; drift catches plausible values from a different population (a new
clinic, a unit change within range, a broken upstream join). Per column, ``prep`` computes:

- the population stability index (PSI) over quantile bins of the reference: < 0.1 stable, 0.1–0.25 moderate,
  > 0.25 a major shift;
- the two-sample Kolmogorov–Smirnov statistic (largest gap between the two empirical CDFs, 0–1).

A column over either threshold (:class:`amlops.core.settings.DriftSettings`) stops ``prep`` with the column, the
statistic and its value named, so a shifted data set never trains, let alone replaces, the production model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from amlops.core.errors import BadInputError
from amlops.core.settings import DriftSettings

#: Floor for empty bins, so the PSI stays finite (a bin empty on one side still counts heavily).
_EPSILON = 1e-4


class DataDriftError(BadInputError, ValueError):
    """The data drifted from the reference beyond the configured thresholds."""

    def __init__(self, source: str, drifted: list[ColumnDrift], settings: DriftSettings):
        self.source = source
        self.drifted = drifted
        lines = [f"  - column {d.column!r}: {', '.join(d.breaches(settings))}" for d in drifted]
        super().__init__(
            f"{source}: data drifted from the reference snapshot (max PSI {settings.max_psi}, max KS "
            f"{settings.max_ks}; AMLOPS_DRIFT_* to change, AMLOPS_DRIFT_ENABLED=false to skip):\n" + "\n".join(lines)
        )


@dataclass(frozen=True)
class ColumnDrift:
    """Drift statistics of one column."""

    column: str
    psi: float
    ks: float
    reference_mean: float
    current_mean: float

    def breaches(self, settings: DriftSettings) -> list[str]:
        """The rules this column breaks, in words."""
        found = []
        if self.psi > settings.max_psi:
            found.append(f"psi {self.psi:.3f} > {settings.max_psi}")
        if self.ks > settings.max_ks:
            found.append(f"ks {self.ks:.3f} > {settings.max_ks}")
        if found:
            found.append(f"mean {self.reference_mean:.4g} -> {self.current_mean:.4g}")
        return found


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of ``current`` against ``reference``, over reference quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.maximum(expected, _EPSILON), np.maximum(actual, _EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def column_drift(reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings) -> list[ColumnDrift]:
    """PSI and KS statistic of every numeric column of the reference (features and target)."""
    from scipy.stats import ks_2samp  # scipy.stats takes ~0.5 s to import: only when drift is measured

    result = []
    for column in [name for name in reference.columns if pd.api.types.is_numeric_dtype(reference[name])]:
        ref = reference[column].to_numpy(dtype=np.float64)
        cur = current[column].to_numpy(dtype=np.float64)
        result.append(
            ColumnDrift(
                column=column,
                psi=psi(ref, cur, settings.bins),
                ks=float(ks_2samp(ref, cur).statistic),
                reference_mean=float(ref.mean()),
                current_mean=float(cur.mean()),
            )
        )
    return result


def check(reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, source: str) -> list[ColumnDrift]:
    """Return every column's drift; raise when any column is over a threshold.

    Args:
        reference: The validated reference snapshot.
        current: The validated incoming table.
        settings: Thresholds.
        source: Name of the incoming data for the error message.

    Raises:
        DataDriftError: naming each drifted column, the statistic and its value.
    """
    measured = column_drift(reference, current, settings)
    drifted = [d for d in measured if d.breaches(settings)]
    if drifted:
        raise DataDriftError(source, drifted, settings)
    return measured
