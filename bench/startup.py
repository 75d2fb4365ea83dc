"""How long the CLI takes to start, and a whole ``make run``, as multiples of ``python -c pass`` in the same run.

Every round runs, in turn (the order rotates from round to round), ``python -c pass`` (the baseline: the
interpreter and ``site``), ``python -m amlops --help`` and ``python -m amlops models list``, each a fresh process,
timed from launch to exit. ``models list`` runs in a throw-away copy of the project (``AMLOPS_ROOT``) whose
registry holds the version a ``make run`` registered there first, so it measures a steady state: the registry
exists and is migrated. Without a ``make run`` (``--skip-lifecycle``) an unmeasured first ``models list`` creates
the registry, which stays empty. The ``make run`` figure is the total of :func:`bench.lifecycle.measure` (a
``python -m amlops run`` in a fresh copy with the installed environment, as ``make run`` after ``make install``),
interleaved with the rounds.

Apart from the timing, one ``python -X importtime`` run of each command records which modules it imported: none
of :data:`HEAVY` may be imported by ``--help``.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import lifecycle, quiet


@dataclass(frozen=True)
class Command:
    """A command timed from process launch to exit."""

    key: str
    label: str
    args: tuple[str, ...]
    target_s: float | None


BASELINE = Command("pass", "python -c pass", ("-c", "pass"), None)
HELP = Command("--help", "amlops --help", ("-m", "amlops", "--help"), 0.3)
MODELS_LIST = Command("models list", "amlops models list", ("-m", "amlops", "models", "list"), 1.5)
COMMANDS = (BASELINE, HELP, MODELS_LIST)
#: ``make run`` after ``make install``: its total comes from :mod:`bench.lifecycle`.
MAKE_RUN = Command("make run", "make run", ("-m", "amlops", "run"), 4.0)
ROWS = (*COMMANDS, MAKE_RUN)
#: Libraries ``--help`` must not import (``tests/test_architecture.py`` keeps the same list).
HEAVY = ("mlflow", "sklearn", "pandas", "scipy", "azure.ai.ml", "azure.identity", "matplotlib")


def _log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")


def run_once(command: Command, root: Path, timeout: float = 300, importtime: bool = False) -> tuple[float, str]:
    """Run ``command`` in the project copy ``root``: its wall time in seconds and its stderr.

    Raises:
        RuntimeError: if it fails.
    """
    argv = [sys.executable, *(("-X", "importtime") if importtime else ()), *command.args]
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=root, env=lifecycle.child_env(root), capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command.args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def measure(work: Path, rounds: int, make_runs: int, log: Callable[[str], None] = _log) -> tuple[dict, list[dict]]:
    """The start-up rounds and ``make_runs`` lifecycle runs, interleaved; returns (start-up raw, lifecycle runs).

    The first ``make run`` happens in the copy of the project that ``models list`` then lists; the others each in
    a fresh copy (:func:`bench.lifecycle.measure`).
    """
    root = lifecycle.copy_project(work / "cli-project")
    runs: list[dict] = []
    if make_runs:
        log(f"start-up: make run 1/{make_runs} (registers the version `models list` lists)")
        runs.append(lifecycle.measure(work, root=root))
        registry = "1 version, in production (registered by a make run in the same copy)"
    else:
        run_once(MODELS_LIST, root)
        registry = "empty (created by an unmeasured first run)"
    imports = {}
    for command in (HELP, MODELS_LIST):
        imports[command.key] = import_summary(parse_importtime(run_once(command, root, importtime=True)[1]))
    measured = []
    for index in range(rounds):
        log(f"start-up: round {index + 1}/{rounds}")
        shift = index % len(COMMANDS)
        before = quiet.CpuSnapshot()
        started = time.monotonic()
        seconds = {c.key: run_once(c, root)[0] for c in (*COMMANDS[shift:], *COMMANDS[:shift])}
        foreign = quiet.foreign_cpu_seconds(before, quiet.CpuSnapshot()) / (time.monotonic() - started)
        measured.append(seconds | {"foreign_cpu_cores": round(foreign, 3)})
        if len(runs) < make_runs:
            log(f"start-up: make run {len(runs) + 1}/{make_runs}")
            runs.append(lifecycle.measure(work))
    while len(runs) < make_runs:
        log(f"start-up: make run {len(runs) + 1}/{make_runs}")
        runs.append(lifecycle.measure(work))
    return {"rounds": measured, "registry": registry, "imports": imports}, runs


# --- what was imported -----------------------------------------------------------------------------------


def parse_importtime(stderr: str) -> list[tuple[str, int, int]]:
    """``-X importtime`` lines as (module, nesting depth, cumulative microseconds), in the order printed."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append((name.strip(), depth, int(parts[1])))
    return found


def heavy_modules(modules: list[str]) -> list[str]:
    """Which of :data:`HEAVY` are among ``modules`` (a package counts when any of its modules is)."""
    return [h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)]


#: Not packages a command chose to import: the interpreter's start-up hooks.
_NOT_PACKAGES = ("amlops", "sitecustomize", "usercustomize")


def import_summary(entries: list[tuple[str, int, int]], top: int = 5, least_us: int = 1000) -> dict:
    """The heavy libraries imported, and the third-party packages that took longest to import (seconds).

    A package's time is its outermost import's cumulative time (``-X importtime`` inflates it somewhat); packages
    under ``least_us`` microseconds are left out.
    """
    longest: dict[str, int] = {}
    for name, _, cumulative in entries:
        package = name.split(".")[0]
        if package in _NOT_PACKAGES or package in sys.stdlib_module_names or package.startswith("_"):
            continue
        longest[package] = max(longest.get(package, 0), cumulative)
    slowest = sorted(((p, us) for p, us in longest.items() if us >= least_us), key=lambda item: -item[1])[:top]
    return {
        "modules": len(entries),
        "heavy": heavy_modules([name for name, _, _ in entries]),
        "slowest": [[package, round(us / 1e6, 3)] for package, us in slowest],
    }


# --- summary ---------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def summarize(startup: dict | None, lifecycle_runs: list[dict]) -> dict:
    """Per command: median seconds, spread (min, max), ratio to the baseline's median, target and verdict."""
    if not startup:
        return {}
    samples = {c.key: [r[c.key] for r in startup["rounds"]] for c in COMMANDS}
    samples[MAKE_RUN.key] = [run["total"] for run in lifecycle_runs if "total" in run]
    baseline = _median(samples[BASELINE.key])
    rows = []
    for command in ROWS:
        values = [v for v in samples[command.key] if math.isfinite(v)]
        seconds = _median(values)
        met = None
        if command.target_s is not None and math.isfinite(seconds):
            met = seconds <= command.target_s
        rows.append(
            {
                "key": command.key,
                "label": command.label,
                "runs": len(values),
                "median_s": seconds,
                "min_s": min(values) if values else float("nan"),
                "max_s": max(values) if values else float("nan"),
                "ratio": seconds / baseline if baseline and math.isfinite(baseline) else float("nan"),
                "target_s": command.target_s,
                "met": met,
            }
        )
    help_imports = startup["imports"].get(HELP.key, {})
    return {
        "rounds": len(startup["rounds"]),
        "baseline_s": baseline,
        "registry": startup["registry"],
        "foreign_cpu_cores": _median([r.get("foreign_cpu_cores", float("nan")) for r in startup["rounds"]]),
        "rows": rows,
        "imports": startup["imports"],
        "help_heavy": help_imports.get("heavy"),
        "help_light": help_imports.get("heavy") == [],
        "missed": [row["key"] for row in rows if row["met"] is False]
        + ([] if help_imports.get("heavy") == [] else ["--help imports"]),
    }
