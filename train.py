"""Training script (``sklearn.runconfig``: ``script``): your estimator. The pipeline fits, measures and saves it.

    python train.py --data build/prepared --out build/trained --alpha 1.0

Replace ``build`` with your model: it returns the unfitted scikit-learn estimator (a regressor or a
classifier, as ``contract.yml``'s ``task`` says). Its keyword arguments are ``contract.yml``'s ``params``,
with their defaults there; ``--alpha 0.5`` here, or ``python -m amlops pipeline run --param alpha=0.5``,
overrides one. The package does the rest (``amlops.steps.train``): it reads the prepared data, fits,
measures the contract's metrics on both splits, logs to MLflow and saves an MLflow model folder.
The same script is the ``train`` step of the pipeline, locally and as an Azure ML command component.
"""

from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from amlops.core.logs import run_step
from amlops.steps.train import main


def build(alpha: float) -> Pipeline:
    """Standardise every feature, then a ridge regression of strength ``alpha``."""
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


if __name__ == "__main__":
    raise SystemExit(run_step(lambda argv: main(build, argv)))
