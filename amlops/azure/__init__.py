"""Azure ML v2: the only part of the package that imports ``azure.ai.ml`` and ``azure.identity``.

- :mod:`amlops.core.azure_settings`: endpoint names, where the workspace config lives (``AMLOPS_AZURE_*``);
- :mod:`amlops.azure.connection`: the workspace and credentials, failing fast with a message when either is missing;
- :mod:`amlops.azure.translate`: the document's files (``sklearn.runconfig``, ``inferenceConfig.yml``,
  ``deploymentConfig*.yml``) as v2 entities: pure functions, no workspace, no network;
- :mod:`amlops.azure.render`: those entities as v2 YAML files with ``$schema`` (``build/azureml/``);
- :mod:`amlops.azure.operations`: the thin layer that calls ``MLClient``: submit, publish, register, deploy,
  traffic, rollback;
- :mod:`amlops.azure.build_steps`: the CI build's Azure steps (``python -m amlops build <step> --target azure``);
- :mod:`amlops.cli.azure`: the ``azure`` commands of ``python -m amlops``.

The SDK is imported inside functions, so importing this package (and the CLI) stays fast.
"""
