"""amlops: a scikit-learn model from notebook to real-time REST service, locally and on Azure ML.

Importing the package is cheap on purpose: ``score.py`` runs inside the inference server and imports
only :mod:`amlops.scoring`.
"""

__version__ = "0.1.0"
