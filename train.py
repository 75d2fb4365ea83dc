"""Training script (``sklearn.runconfig``: ``script``): fit, log to MLflow, save an MLflow model folder.

    python train.py --data build/prepared --out build/trained --alpha 1.0

The same script is the ``train`` step of the pipeline, locally and as an Azure ML command component.
"""

from amlops.core.logs import run_step
from amlops.steps.train import main

if __name__ == "__main__":
    raise SystemExit(run_step(main))
