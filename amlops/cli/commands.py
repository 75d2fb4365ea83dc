"""The lifecycle commands of ``python -m amlops``: data, pipeline, models, endpoints, build."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from amlops.app import build, targets, workflow
from amlops.core.errors import EXIT_DEGRADED
from amlops.core.settings import DataSettings, EfficacySettings, ProjectSettings
from amlops.lifecycle import efficacy, inventory, pipeline, retirement
from amlops.lifecycle.migrate import export_version, import_archive
from amlops.ml import data
from amlops.registry.base import ModelRegistry

log = logging.getLogger("amlops")


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Record the sha256 of the data snapshot, after checking the file against the contract."""
    settings = ProjectSettings()
    path = args.data or settings.data_snapshot
    data.validate(data.load_csv(path), settings.contract, min_rows=DataSettings().min_rows, source=str(path))
    log.info("wrote %s.sha256 (sha256 %s)", path.name, data.write_sha256(path))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a data file against the schema."""
    settings = ProjectSettings()
    path = args.data or settings.data_snapshot
    frame = data.validate(data.load_csv(path), settings.contract, min_rows=DataSettings().min_rows, source=str(path))
    log.info("%s: %d rows, %d columns, valid (sha256 %s)", path, len(frame), frame.shape[1], data.sha256_file(path))
    return 0


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    """Run prep → train → evaluate → register (or a published version with --published), here or on Azure ML."""
    overrides = dict(args.params) | ({"data": args.data} if args.data is not None else {})
    if not args.promote:
        overrides["promote"] = False
    if args.published:
        name, _, version = args.published.partition(":")
        if version and not version.isdigit():
            raise LookupError(f"--published {args.published}: {version!r} is not a version number")
        overrides |= {"name": name, "version": int(version) if version else None}
        outcome = workflow.run_published_pipeline(targets.resolve(args.target, args.workspace_config), **overrides)
    else:
        outcome = workflow.run_pipeline(targets.resolve(args.target, args.workspace_config), **overrides)
    sys.stdout.write(json.dumps(outcome, indent=2, default=str) + "\n")
    return 0


def cmd_pipeline_publish(args: argparse.Namespace) -> int:
    """Publish the pipeline: a versioned local definition, or an Azure ML pipeline component."""
    parameters = dict(args.params) | ({"data": args.data} if args.data is not None else {})
    target = targets.resolve(args.target, args.workspace_config)
    published = workflow.publish_pipeline(target, name=args.name, description=args.description, **parameters)
    sys.stdout.write(json.dumps(published, indent=2, default=str) + "\n")
    return 0


def cmd_pipeline_list(args: argparse.Namespace) -> int:
    """List the published versions of a pipeline."""
    versions = [asdict(v) for v in pipeline.published_versions(args.name)]
    sys.stdout.write(json.dumps(versions, indent=2) + "\n")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List registered versions with their metrics and which one is in production (local, or ``--target azure``)."""
    registry, _ = _governed(args)
    versions = registry.versions()
    if args.json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "version": v.version,
                        "production": v.in_production,
                        "retired": v.retired,
                        "metrics": v.metrics,
                        "tags": v.tags,
                    }
                    for v in versions
                ],
                indent=2,
            )
            + "\n"
        )
        return 0
    if not versions:
        sys.stdout.write(f"no versions of {registry.name} registered yet\n")
        return 0
    sys.stdout.write(versions_table(versions, ProjectSettings().contract.metric_names))
    return 0


def versions_table(versions: list, names: tuple[str, ...]) -> str:
    """``models list``'s table: a line per version, a column per metric as wide as its name (at least 8)."""
    widths = [max(8, len(name)) for name in names]
    header = "".join(f"  {name:>{width}}" for name, width in zip(names, widths, strict=True))
    lines = [f"{'version':>7}  {'prod':4}{header}  {'data sha256':12}  {'git':11}  decision"]
    for v in versions:
        values = "".join(
            f"  {v.metrics.get(name, float('nan')):>{width}.4g}" for name, width in zip(names, widths, strict=True)
        )
        lines.append(
            f"{v.version:>7}  {'*' if v.in_production else '':4}{values}  "
            f"{v.tags.get('data_sha256', '')[:12]:12}  {v.tags.get('git_commit', '')[:11]:11}  "
            f"{v.tags.get('decision', '')}{'  RETIRED' if v.retired else ''}"
        )
    return "\n".join(lines) + "\n"


def _model_ref(text: str | None) -> tuple[str | None, str | None]:
    """``NAME:VERSION``, ``NAME``, ``VERSION``, ``NAME:production`` -> (name or None, version or None)."""
    if not text:
        return None, None
    if ":" in text:
        name, _, version = text.rpartition(":")
        return name or None, None if version in ("", "production") else version
    if text == "production":
        return None, None
    return (None, text) if text.isdigit() else (text, None)


def _governed(args: argparse.Namespace, name: str | None = None) -> tuple[ModelRegistry, targets.Target]:
    """The registry of ``name`` (default: the project's model) on the target the arguments choose, and the target."""
    target = targets.open_target(args.target, args.workspace_config)
    return target.registry(name), target


def cmd_models_show(args: argparse.Namespace) -> int:
    """A version's metrics, lineage, retirement, last efficacy check and deployments (default: production)."""
    name, version = _model_ref(args.model)
    registry, target = _governed(args, name)
    described = inventory.describe(registry, retirement.resolve(registry, version), serving=target.serving)
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(inventory.render_description(described))
    return 0


def cmd_models_retire(args: argparse.Namespace) -> int:
    """Mark a version as not to be served; with --replace, redeploy production wherever it is live."""
    name, version = _model_ref(args.model)
    registry, where = _governed(args, name)
    target = retirement.resolve(registry, version)
    result = retirement.retire(
        registry,
        target.version,
        args.reason,
        replacement=args.replacement,
        replace=args.replace,
        config=args.config,
        serving=where.serving,
        redeploy_remote=where.redeploy_remote,
        say=lambda line: sys.stdout.write(line + "\n"),
    )
    for record in result.replaced:
        sys.stdout.write(
            f"replaced: {record.target} endpoint {record.endpoint} serves v{result.replaced_by} at {record.url}\n"
        )
    still = result.still_live
    for record in still:
        sys.stdout.write(f"STILL LIVE: {record.target} endpoint {record.endpoint} ({record.deployment}) {record.url}\n")
    if still:
        sys.stdout.write(
            "the retired version keeps serving there until replaced: rerun with --replace, or undeploy it\n"
        )
    return 0


def cmd_models_unretire(args: argparse.Namespace) -> int:
    """Undo a retirement (recorded with who and when)."""
    name, version = _model_ref(args.model)
    registry, _ = _governed(args, name)
    target = registry.get(version) if version else retirement.resolve(registry, None)
    retirement.unretire(registry, target.version, args.reason)
    sys.stdout.write(f"{target.name} v{target.version} may be deployed and promoted again\n")
    return 0


def cmd_models_check(args: argparse.Namespace) -> int:
    """Score the production model on newer labelled data; exit 4 when degraded (and retrain if asked)."""
    rules = EfficacySettings()
    registry, target = _governed(args)
    with tempfile.TemporaryDirectory(prefix="amlops-check-data-") as scratch:
        data = target.data_file(args.data, Path(scratch))
        report = efficacy.check_efficacy(registry, data, rules=rules)
        retrained = None
        if report.degraded and (args.retrain or rules.retrain):
            log.info("degraded: starting the training pipeline on %s", args.data)
            retrained = target.retrain(data)
    if args.json:
        sys.stdout.write(json.dumps(asdict(report) | {"retrained": retrained}, indent=2) + "\n")
    else:
        sys.stdout.write(efficacy.render_report(report))
        if retrained:
            sys.stdout.write(f"retraining: {json.dumps(retrained)}\n")
    return EXIT_DEGRADED if report.degraded else 0


def cmd_endpoints_list(args: argparse.Namespace) -> int:
    """Each endpoint with the version it serves (local: running endpoints and records; azure: the stages)."""
    registry, target = _governed(args)
    rows = target.endpoints(registry)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(inventory.render_endpoints(rows))
    return 0


def _migration_registry(args: argparse.Namespace) -> ModelRegistry:
    """``--registry-uri`` (any MLflow registry), the workspace's with ``--target azure``, else the project's."""
    return targets.migration_registry(args.target, args.workspace_config, args.registry_uri)


def cmd_models_export(args: argparse.Namespace) -> int:
    """Export a registered version to an archive."""
    registry = _migration_registry(args)
    version = args.version.rpartition(":")[2]
    if version == "production":
        current = registry.production()
        if current is None:
            raise LookupError(f"no version of {registry.name} is in production")
        version = current.version
    export_version(registry, version, args.out)
    sys.stdout.write(f"{args.out}\n")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    """Move the production marker to a version (the project's registry, or the workspace's with --target azure)."""
    registry, _ = _governed(args)
    version = registry.get(args.version.rpartition(":")[2])
    registry.promote(version.version)
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    """Import an exported archive into a registry."""
    imported = import_archive(args.archive, _migration_registry(args), promote=args.promote)
    sys.stdout.write(json.dumps(asdict(imported), indent=2) + "\n")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Run one build step, or all of them in order (the local dry run of the CI build)."""
    build.run(args.step, build.BuildContext(args.artifact_dir.resolve(), target=args.target))
    return 0
