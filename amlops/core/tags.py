"""Every tag name the project writes on model versions and endpoints, in one place.

The registry is where the lifecycle keeps its facts (``docs/governance.md``): the MLflow UI and Azure ML studio
show the same tags the CLI reads.
"""

from __future__ import annotations

#: The production marker as a tag too: Azure ML's registry may not support MLflow aliases, and the Azure models
#: API sets the same tag, so both registries agree on what is in production.
PRODUCTION_TAG = "production"
#: Holdout metrics and training parameters recorded at registration: ``metric.<name>``, ``param.<name>``.
METRIC_TAG_PREFIX = "metric."
PARAM_TAG_PREFIX = "param."
#: The version a promotion replaced (what ``release --rollback`` goes back to).
REPLACED_VERSION_TAG = "replaced_version"

#: Retirement (``models retire``): a retired version is never deployed or promoted again until unretired.
RETIRED_TAG = "retired"
RETIRED_REASON_TAG = "retired_reason"
RETIRED_BY_TAG = "retired_by"
RETIRED_AT_TAG = "retired_at"
UNRETIRED_BY_TAG = "unretired_by"
UNRETIRED_AT_TAG = "unretired_at"
UNRETIRED_REASON_TAG = "unretired_reason"

#: Deployment records: ``deployment.<target>.<endpoint>`` (the latest) and ``deployments`` (the history).
DEPLOYMENT_TAG_PREFIX = "deployment."
HISTORY_TAG = "deployments"
#: The last ``models check``.
EFFICACY_TAG = "efficacy.last_check"
#: Tags that describe a version's deployments and checks in *its* registry: an import into another drops them.
SOURCE_ONLY_PREFIXES = (DEPLOYMENT_TAG_PREFIX, HISTORY_TAG, "efficacy.")

#: Where an imported version came from (``models import``).
ORIGIN_TAGS = ("imported_from_registry", "imported_from_name", "imported_from_version", "import_archive_sha256")
#: Tags shown as a version's lineage by ``models show``.
LINEAGE_TAGS = (
    "git_commit",
    "git_dirty",
    "data_source",
    "data_sha256",
    "data_rows",
    "train_run_id",
    "pipeline_run_id",
    "build_id",
    "build_url",
    "decision",
    "decision_reasons",
    REPLACED_VERSION_TAG,
    *ORIGIN_TAGS,
)

#: The tag Azure ML sets on the MLflow run of each job: the name of the top job (a step's pipeline job).
ROOT_RUN_TAG = "mlflow.rootRunId"
#: Azure endpoint tags: the deployment a release made live, and the ones it kept for rollback.
LIVE_TAG = "amlops-live-deployment"
PREVIOUS_TAG = "amlops-previous-deployment"
