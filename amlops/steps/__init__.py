"""Pipeline steps: each a pure function plus a thin CLI whose inputs and outputs are folders.

This is the Azure ML v2 component contract: the same module runs locally, chained by
:mod:`amlops.lifecycle.pipeline`, and as a command component in an Azure ML pipeline job.
"""
