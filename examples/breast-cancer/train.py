"""Training script (``sklearn.runconfig``: ``script``): the breast-cancer classifier.

    python train.py --data build/prepared --out build/trained --c 1.0

``build`` returns the unfitted estimator; its keyword arguments are ``contract.yml``'s ``params``. The package
fits it, measures accuracy, balanced accuracy, macro F1 and log loss, logs to MLflow and saves the model.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from amlops.core.logs import run_step
from amlops.steps.train import main


def build(c: float) -> Pipeline:
    """Standardise every measurement, then a logistic regression of inverse strength ``c``."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))


if __name__ == "__main__":
    raise SystemExit(run_step(lambda argv: main(build, argv)))
