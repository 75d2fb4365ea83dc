"""Scoring: the only code staged into an endpoint beside ``score.py``.

It imports no MLflow, pandas or Azure SDK (and, for a linear model, no scikit-learn), so a serving worker starts
fast and stays small. Request bodies, with the features in the order ``contract.yml`` lists them::

    {"data": [[1.5, 2, 32.1, ...], ...]}
    {"data": [{"<feature>": 1.5, "<other feature>": 2, ...}, ...]}

Response: ``{"predictions": [...], "model": {"name": ..., "version": ...}}``; every malformed request is answered
with a 4xx status and ``{"message": ...}`` naming the problem (``docs/endpoint.md``). Speed (``docs/performance.md``):

- :mod:`~amlops.scoring.requests`: list-of-lists bodies parsed by simdjson straight into a float64 buffer;
- :mod:`~amlops.scoring.linear`: a linear model predicted without scikit-learn (optional, identical results);
- :mod:`~amlops.scoring.service`: large answers serialised by orjson.
"""
