"""``make bench``: the scoring endpoint against its floor and its peers, in one run on 127.0.0.1.

Usage::

    python -m bench                  # the full benchmark (10-15 minutes), results in build/bench/
    python -m bench --quick          # a smoke run with tiny request counts (what the tests run)
    python -m bench --only startup   # only the CLI start-up and `make run` (about a minute)
    python -m bench --help

For each server of :data:`bench.servers.VARIANTS`, started with the worker count of
``deploymentConfig.local.yml``, and for batches of 1, 100 and 1,000 rows, it measures p50/p99 latency with
one client and throughput with 8 and 32 concurrent clients, then the cold start (process start → first
healthy liveness answer) and the resident memory of the worker processes. Each server is started afresh
in each repetition (interleaved, so drift hits all alike) and medians are reported. It also times each
stage of a ``make run`` in a throw-away copy of the project, and the CLI's start-up (``--help``, ``models list``)
and the whole ``make run`` against ``python -c pass`` (:mod:`bench.startup`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hostile import REQUEST_TIMEOUT
from tests.support.scoring import bad_requests, first_row  # the scoring contract's bad requests (no pandas)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "build" / "bench"
DOCS = REPO / "docs" / "performance.md"
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    repetitions: int
    seconds: float
    warmup_seconds: float
    batches: tuple[int, ...]
    clients: tuple[int, ...]
    max_requests: int | None  # per load point, for the Python generator
    lifecycle_runs: int
    #: Extra attempts at a load point during which other processes used more than MAX_FOREIGN_CORES.
    retries: int = 0
    #: Rounds of the CLI start-up measurement (each: `python -c pass`, `--help`, `models list`).
    startup_rounds: int = 7
    #: Valid requests per hostile-client scenario (:mod:`bench.hostile`), and how long each may wait.
    hostile_requests: int = 400
    hostile_timeout: float = REQUEST_TIMEOUT


FULL = Plan(5, 2.0, 1.5, (1, 100, 1000), (8, 32), 20_000, 3, retries=3)
QUICK = Plan(1, 0.3, 0.0, (1, 1000), (4,), 12, 1, startup_rounds=1, hostile_requests=8, hostile_timeout=2.0)
#: A load point during which other processes used more than this many cores is taken again (see retries).
MAX_FOREIGN_CORES = 0.1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny request counts, one repetition (a smoke run)")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk when installed, else Python)",
    )
    parser.add_argument("--repetitions", type=int, help=f"repetitions of every measurement (full: {FULL.repetitions})")
    parser.add_argument("--seconds", type=float, help=f"seconds of each load point (full: {FULL.seconds:g})")
    parser.add_argument("--workers", type=int, help="workers per server (default: deploymentConfig.local.yml)")
    parser.add_argument("--variants", nargs="+", choices=[v.key for v in _variants()], help="servers to run")
    parser.add_argument(
        "--batches", type=int, nargs="+", help=f"batch sizes in rows (full: {' '.join(map(str, FULL.batches))})"
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        help=f"concurrent clients for throughput (full: {' '.join(map(str, FULL.clients))})",
    )
    parser.add_argument("--skip-lifecycle", action="store_true", help="do not time the `make run` stages")
    parser.add_argument(
        "--only", choices=("startup",), help="startup: only the CLI start-up and `make run` (no servers, no load)"
    )
    parser.add_argument(
        "--startup-rounds", type=int, help=f"rounds of the CLI start-up measurement (full: {FULL.startup_rounds})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default: {DEFAULT_OUT})")
    parser.add_argument("--update-docs", action="store_true", help=f"write the results table into {DOCS}")
    return parser.parse_args(argv)


def _variants():
    from bench.servers import VARIANTS

    return VARIANTS


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every measurement succeeded (targets are reported, not enforced)."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        args.repetitions or plan.repetitions,
        args.seconds or plan.seconds,
        plan.warmup_seconds,
        tuple(args.batches or plan.batches),
        tuple(args.clients or plan.clients),
        plan.max_requests,
        0 if args.skip_lifecycle else plan.lifecycle_runs,
        plan.retries,
        plan.startup_rounds if args.startup_rounds is None else args.startup_rounds,
        plan.hostile_requests,
        plan.hostile_timeout,
    )
    if args.only == "startup":
        return startup_only(plan, args)
    from bench import load, report

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if load.have_wrk() else "python"
    if generator == "wrk" and not load.have_wrk():
        sys.stderr.write("wrk is not installed: `apt-get install wrk`, or use --generator python\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="amlops-bench-"))
    started = time.time()
    try:
        raw = measure(plan, generator, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    raw["meta"]["wall_seconds"] = round(time.time() - started, 1)
    summary = report.summarize(raw)
    text = report.render(raw, summary)
    sys.stdout.write(text)
    report.write_json(args.out / "results.json", raw, summary)
    report.plot(args.out / "bench.png", summary)
    (args.out / "table.txt").write_text(text)
    if args.update_docs and not args.quick:
        report.update_docs(DOCS, raw, summary, args.out / "bench.png")
        sys.stdout.write(f"updated {DOCS.relative_to(REPO)}\n")
    sys.stdout.write(f"results: {args.out / 'results.json'}, plot: {args.out / 'bench.png'}\n")
    problems = raw["problems"]
    for problem in problems:
        sys.stderr.write(f"PROBLEM: {problem}\n")
    return 1 if problems else 0


def measure(plan: Plan, generator: str, args: argparse.Namespace, work: Path) -> dict:
    """Every measurement, raw."""
    from amlops.core.deployment_config import load_deployment_config
    from bench import load, quiet, servers

    workers = args.workers or load_deployment_config(REPO / "deploymentConfig.local.yml").workers
    variants = [v for v in servers.VARIANTS if not args.variants or v.key in args.variants]
    log(f"training the model and writing request bodies under {work}")
    model_folder, rows, expected = make_model(work)
    bodies = write_bodies(work, rows, plan.batches)
    raw: dict = {
        "meta": {
            "machine": machine(),
            "generator": generator,
            "workers": workers,
            "repetitions": plan.repetitions,
            "seconds": plan.seconds,
        },
        "plan": {"batches": list(plan.batches), "clients": list(plan.clients)},
        "ceiling": [],
        "runs": [],
        "lifecycle": [],
        "startup": None,
        "problems": [],
    }

    def point(url: str, body: Path, clients: int, seconds: float) -> dict:
        """One load point; taken again (up to plan.retries times) while other processes are busy."""
        best = None
        for attempt in range(1 + plan.retries):
            before, started = quiet.CpuSnapshot(), time.monotonic()
            result = load.run_load(generator, url, body, clients, seconds, plan.max_requests).to_dict()
            foreign = quiet.foreign_cpu_seconds(before, quiet.CpuSnapshot()) / (time.monotonic() - started)
            result |= {"foreign_cpu_cores": round(foreign, 3), "attempts": attempt + 1}
            if best is None or foreign < best["foreign_cpu_cores"]:
                best = result
            if foreign <= MAX_FOREIGN_CORES:
                break
            time.sleep(1)
        return best

    for rep in range(plan.repetitions):
        log(f"repetition {rep + 1}/{plan.repetitions}: load generator ceiling (do-nothing server)")
        with load.TrivialServer() as trivial:
            raw["ceiling"].append(
                {
                    "latency": point(trivial.url, bodies["data"][1], 1, plan.seconds),
                    "throughput": {
                        str(c): point(trivial.url, bodies["data"][1], c, plan.seconds) for c in plan.clients
                    },
                }
            )
        runs = measure_repetition(
            rep, plan, variants, workers, model_folder, bodies, expected, work, point, raw, generator
        )
        raw["runs"].extend(runs)
    raw["hostile"] = measure_hostile(plan, variants, workers, model_folder, rows, work)
    if plan.lifecycle_runs or plan.startup_rounds:
        from bench import startup

        raw["startup"], raw["lifecycle"] = startup.measure(work, plan.startup_rounds, plan.lifecycle_runs, log)
    return raw


def machine() -> str:
    """The machine, as the results name it."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def startup_only(plan: Plan, args: argparse.Namespace) -> int:
    """``--only startup``: the CLI start-up rounds and the `make run` runs; results in ``startup.json``."""
    from bench import report, startup

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="amlops-bench-"))
    started = time.time()
    raw: dict = {"meta": {"machine": machine(), "repetitions": plan.startup_rounds}, "problems": []}
    try:
        raw["startup"], raw["lifecycle"] = startup.measure(work, plan.startup_rounds, plan.lifecycle_runs, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    raw["meta"]["wall_seconds"] = round(time.time() - started, 1)
    summary = {"startup": startup.summarize(raw["startup"], raw["lifecycle"])}
    text = "\n" + "\n".join(report.startup_lines(summary["startup"])) + "\n"
    sys.stdout.write(text)
    report.write_json(args.out / "startup.json", raw, summary)
    (args.out / "startup.txt").write_text(text)
    if args.update_docs and not args.quick:
        report.update_startup_docs(DOCS, raw, summary["startup"])
        sys.stdout.write(f"updated the CLI start-up table in {DOCS.relative_to(REPO)}\n")
    sys.stdout.write(f"results: {args.out / 'startup.json'}\n")
    return 0


def measure_repetition(
    rep, plan, variants, workers, model_folder, bodies, expected, work, point, raw, generator="wrk"
) -> list[dict]:
    """One repetition: start every server (each one's cold start alone), then load them in turn.

    The load points are interleaved (for each batch and client count, every server in turn) so that whatever
    else the machine is doing affects all servers alike: the ratios are what this benchmark is about.
    """
    from bench import load, servers

    started: list[servers.Server] = []
    runs: dict[str, dict] = {}
    try:
        for variant in variants:
            log(f"repetition {rep + 1}/{plan.repetitions}: starting {variant.label}")
            server = servers.Server(variant, workers, model_folder, work / f"{variant.key}-{rep}", REPO)
            started.append(server)
            server.start()
            runs[variant.key] = {
                "variant": variant.key,
                "rep": rep,
                "cold_start_s": server.cold_start_seconds,
                "checks": check_server(server, variant.key, bodies, expected, raw["problems"]),
                "load": {},
            }
            kind = "mlflow" if variant.mlflow else "data"
            for batch in plan.batches:  # warm up (not measured): first requests pay lazy imports and caches
                if plan.warmup_seconds:
                    seconds = plan.warmup_seconds / len(plan.batches)
                    load.run_load(generator, server.url, bodies[kind][batch], plan.clients[0], seconds, 10)
        for batch in plan.batches:
            log(f"repetition {rep + 1}/{plan.repetitions}: batches of {batch} rows")
            for clients in (1, *plan.clients):
                for server in started:
                    kind = "mlflow" if server.variant.mlflow else "data"
                    result = point(server.url, bodies[kind][batch], clients, plan.seconds)
                    entry = runs[server.variant.key]["load"].setdefault(str(batch), {"throughput": {}})
                    if clients == 1:
                        entry["latency"] = result
                    else:
                        entry["throughput"][str(clients)] = result
        for server in started:
            runs[server.variant.key]["memory"] = server.memory()
    finally:
        for server in started:
            server.stop()
    for key, run in runs.items():
        errors = sum(
            x["latency"]["errors"] + sum(t["errors"] for t in x["throughput"].values()) for x in run["load"].values()
        )
        if errors:
            raw["problems"].append(f"{key} rep {rep + 1}: {errors} failed requests under load")
    return list(runs.values())


def measure_hostile(plan: Plan, variants, workers: int, model_folder: Path, rows, work: Path) -> dict:
    """The hostile-client scenarios for the project's server, as it runs now and as it ran before."""
    from bench import hostile, servers

    body = json.dumps({"data": [list(map(float, rows[0]))]}).encode()
    results = {}
    for variant in (v for v in variants if v.key in ("project", "sync")):
        log(f"hostile clients: {variant.label}")
        with servers.Server(variant, workers, model_folder, work / f"hostile-{variant.key}", REPO) as server:
            results[variant.key] = hostile.measure(
                server.url,
                body,
                plan.hostile_requests,
                lambda s=server: servers.worker_pids(s.pid),
                plan.hostile_timeout,
            )
    return results


def log(message: str) -> None:
    """Progress, on stderr."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def make_model(work: Path):
    """``train.py``'s model with its default hyperparameters, fitted on the snapshot and saved; rows, predictions."""
    import numpy as np
    import pandas as pd

    from amlops.core import config
    from amlops.core.settings import ProjectSettings
    from amlops.lifecycle.pipeline import train_script
    from amlops.ml import model
    from amlops.scoring.model import load_model
    from amlops.steps.train import load_build

    settings = ProjectSettings()
    snapshot = pd.read_csv(settings.data_snapshot)
    contract = settings.contract
    build = load_build(train_script(settings, config.load_runconfig(settings.runconfig_file)))
    fitted = model.fit(build, contract.defaults(), snapshot, contract)
    folder = model.save_mlflow_model(fitted, snapshot, work / "model", contract)
    rows = snapshot.loc[:, list(settings.contract.feature_names)].to_numpy(dtype=np.float64)
    expected = load_model(folder).estimator.predict(rows)
    return folder, rows, expected


def write_bodies(work: Path, rows, batches: tuple[int, ...]) -> dict[str, dict[int, Path]]:
    """Request bodies per batch size: ``{"data": ...}`` for the Azure server, ``dataframe_split`` for MLflow."""
    from amlops.core.settings import ProjectSettings

    features = ProjectSettings().contract.feature_names
    folder = work / "bodies"
    folder.mkdir()
    bodies: dict[str, dict[int, Path]] = {"data": {}, "mlflow": {}}
    for batch in sorted({1, *batches}):
        chosen = [rows[i % len(rows)].tolist() for i in range(batch)]
        for kind, document in (
            ("data", {"data": chosen}),
            ("mlflow", {"dataframe_split": {"columns": list(features), "data": chosen}}),
        ):
            path = folder / f"{kind}-{batch}.json"
            path.write_text(json.dumps(document))
            bodies[kind][batch] = path
    return bodies


def check_server(server, key: str, bodies: dict, expected, problems: list[str]) -> dict:
    """Predictions against the model's own (not for the constant floor); bad requests (project and naive)."""
    import numpy as np
    import requests

    checks: dict = {}
    kind = "mlflow" if key == "mlflow" else "data"
    biggest = max(bodies[kind])
    response = requests.post(
        server.url, data=bodies[kind][biggest].read_bytes(), headers={"Content-Type": "application/json"}, timeout=60
    )
    if response.status_code != 200:
        problems.append(f"{key}: HTTP {response.status_code} for a {biggest}-row batch: {response.text[:200]}")
    elif key != "floor":
        got = np.asarray(response.json()["predictions"])
        want = expected[np.arange(biggest) % len(expected)]
        if got.shape != want.shape:
            error = float("inf")
        elif want.dtype.kind in "biuf":  # a regressor's numbers (or numeric class labels)
            error = float(np.max(np.abs(got.astype(np.float64) - want)))
        else:  # a classifier's labels: how many differ
            error = float(np.count_nonzero(got.astype(str) != want.astype(str)))
        checks["max_abs_error"] = error
        if error > TOLERANCE:
            problems.append(f"{key}: predictions differ from the model's by {error:.3g}")
    if key in ("project", "naive"):
        checks["bad_requests"] = bad_request_statuses(server.url)
        if key == "project" and checks["bad_requests"]["unexpected"]:
            problems.append(f"project: bad requests answered unexpectedly: {checks['bad_requests']['unexpected']}")
    return checks


def bad_request_statuses(url: str) -> dict:
    """Send the scoring contract's bad requests (``tests/support/scoring.py``) for this project; count the statuses."""
    import requests

    cases = bad_requests(*first_row(REPO))
    statuses: dict[str, int] = {}
    unexpected = []
    with requests.Session() as session:
        for case in cases:
            data = case.body.encode() if isinstance(case.body, str) else case.body
            response = session.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            if response.status_code != case.status:
                unexpected.append(f"{case.id}: {response.status_code}")
    return {"sent": len(cases), "statuses": statuses, "unexpected": unexpected}


if __name__ == "__main__":
    raise SystemExit(main())
