"""Machine learning: the data contract and its validation, drift, the model helpers, plots."""
