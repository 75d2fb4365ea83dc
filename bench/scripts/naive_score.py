"""A typical tutorial entry script: MLflow loads the model, then json → numpy → predict → list.

No validation beyond what numpy and scikit-learn do by themselves: a malformed request is an exception,
which the server answers with HTTP 500. It is here as the peer a typical deployment would be.
"""

import json
import os

import mlflow.sklearn
import numpy as np

model = None


def init() -> None:
    """Load the MLflow model the way the Azure ML tutorials do."""
    global model
    model = mlflow.sklearn.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))


def run(raw_data: str) -> dict:
    """Predict for ``{"data": [[...], ...]}``."""
    data = np.array(json.loads(raw_data)["data"])
    return {"predictions": model.predict(data).tolist()}
