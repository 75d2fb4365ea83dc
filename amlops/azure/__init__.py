"""Azure ML v2: the only part of the package that imports ``azure.ai.ml`` and ``azure.identity``.

- :mod:`amlops.azure.connection`: the workspace and credentials, failing fast with a message when either is missing;
- :mod:`amlops.azure.translate` and :mod:`amlops.azure.online`: the document's files (``sklearn.runconfig``,
  ``inferenceConfig.yml``, ``deploymentConfig*.yml``) as v2 entities: pure functions, no workspace, no network;
- :mod:`amlops.azure.render`: those entities as v2 YAML files with ``$schema`` (``build/azureml/``);
- :mod:`amlops.azure.operations`: the thin layer that calls ``MLClient`` for jobs, pipelines, models and data;
- :mod:`amlops.azure.rollout`: the same for online endpoints: blue/green deploy, traffic, rollback, clean-up;
- :mod:`amlops.azure.registry`: the workspace's registry as a ``ModelRegistry``, and the records of releases;
- :mod:`amlops.azure.build_steps`: the lifecycle's Azure steps (the CI build, the release, the notebooks).

The SDK is imported inside functions, so importing this package (and the CLI) stays fast.
"""
