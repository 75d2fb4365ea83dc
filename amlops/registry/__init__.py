"""The model registry: the MLflow adapter, deployment records and lifecycle events."""
