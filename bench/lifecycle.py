"""Time of each lifecycle stage of a ``make run`` in a throw-away copy of the project.

The parent (:func:`measure`) copies the configuration files and data into a temporary folder, points
``AMLOPS_ROOT`` at it and runs ``python -m bench.lifecycle`` there: that child runs exactly what
``make run`` runs (``amlops.cli.main(["run"])``) with timers wrapped around the pipeline steps, the
deployment, the endpoint start and the smoke test, and writes what it measured as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amlops.core import files

REPO = Path(__file__).resolve().parents[1]
STAGES = ("startup", "prep", "train", "evaluate", "register", "deploy", "smoke test", "other")


def copy_project(dest: Path) -> Path:
    """Copy this checkout's configuration, data and entry scripts into ``dest``."""
    return files.copy_project(REPO, dest)


def child_env(root: Path) -> dict[str, str]:
    """The environment of a command run in the project copy ``root``: this checkout's code, no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMLOPS_", "MLFLOW_TRACKING", "PYTEST"))}
    return env | {
        "AMLOPS_ROOT": str(root),
        "PYTHONPATH": str(REPO),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


def measure(work: Path, timeout: float = 300, root: Path | None = None) -> dict:
    """One ``make run``-equivalent in a fresh copy of the project under ``work``: seconds per stage.

    With ``root`` (a fresh copy made by :func:`copy_project`), the run happens there and the copy is kept, with
    the version it registered (``bench.startup`` lists it); otherwise the copy is removed afterwards.

    Raises:
        RuntimeError: if the run fails.
    """
    keep = root is not None
    if root is None:
        root = copy_project(Path(tempfile.mkdtemp(prefix="lifecycle-", dir=work)) / "project")
    report = Path(tempfile.mkdtemp(prefix="lifecycle-report-", dir=work)) / "lifecycle.json"
    env = child_env(root)
    launched = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "bench.lifecycle", "--report", str(report), "--launched", repr(launched)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    total = time.monotonic() - launched
    if finished.returncode != 0 or not report.is_file():
        raise RuntimeError(
            f"the lifecycle run failed ({finished.returncode}):\n{finished.stdout[-2000:]}\n{finished.stderr[-3000:]}"
        )
    stages = json.loads(report.read_text())
    stages["other"] = total - sum(stages.values())
    stages["total"] = total
    shutil.rmtree(report.parent, ignore_errors=True)
    if not keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    return stages


# --- the child ------------------------------------------------------------------------------------------


def _timed(stages: dict[str, float], name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            stages[name] = stages.get(name, 0.0) + time.monotonic() - started

    return wrapper


def _run_instrumented(launched: float) -> dict[str, float]:
    from amlops.cli import main as cli
    from amlops.cli import serving as serving_commands
    from amlops.lifecycle import local_deploy
    from amlops.serving import local
    from amlops.steps import evaluate, prep, register
    from amlops.steps import train as train_step

    stages: dict[str, float] = {}
    first_step: list[float] = []

    def first(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            first_step.append(time.monotonic())
            return function(*args, **kwargs)

        return wrapper

    prep.main = first(_timed(stages, "prep", prep.main))
    train_step.main = _timed(stages, "train", train_step.main)
    evaluate.main = _timed(stages, "evaluate", evaluate.main)
    register.main = _timed(stages, "register", register.main)
    # deploy = download from the registry + staging + starting the server until its liveness answers.
    serving_commands.local_endpoint = _timed(stages, "deploy", serving_commands.local_endpoint)
    local.LocalEndpoint.start = _timed(stages, "deploy", local.LocalEndpoint.start)
    local_deploy.smoke_local = _timed(stages, "smoke test", local_deploy.smoke_local)

    code = cli.main(["run"])
    if code != 0:
        raise SystemExit(code)
    stages["startup"] = first_step[0] - launched  # interpreter, imports, MLflow set-up
    return stages


def main(argv: list[str] | None = None) -> int:
    """Run ``make run``'s lifecycle with timers and write the stage times to ``--report``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--launched", type=float, required=True, help="time.monotonic() when the parent started us")
    args = parser.parse_args(argv)
    stages = _run_instrumented(args.launched)
    args.report.write_text(json.dumps(stages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
