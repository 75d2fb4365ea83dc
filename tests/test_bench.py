"""``make bench`` cannot rot: its quick mode runs end to end here (nothing about its timings is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench import load, quiet, report, startup
from bench.run import FULL
from tests.support.checkout import REPO

#: Every process the benchmark starts inherits this variable: how the test finds what this run left behind
#: (and not another benchmark running on the same machine).
RUN_MARKER = "AMLOPS_BENCH_TEST_RUN"


def _bench_processes(marker: str) -> list[str]:
    """Command lines of processes still running that this benchmark run started."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(cmdline)
    return found


@pytest.mark.integration
@pytest.mark.timeout(900)  # every server started and loaded, then a lifecycle run; the benchmark may take 600 s
def test_quick_benchmark_runs_every_server_and_the_lifecycle(tmp_path: Path):
    marker = uuid.uuid4().hex
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--generator", "python", "--out", str(tmp_path)],
        cwd=REPO,
        env=os.environ | {RUN_MARKER: marker},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["raw"]["runs"]
    assert {run["variant"] for run in runs} == {"floor", "project", "sync", "naive", "mlflow"}
    hostile = results["raw"]["hostile"]
    assert set(hostile) == {"project", "sync"}
    for scenario in ("undisturbed", "stalled", "idle", "worker killed"):
        assert hostile["project"][scenario]["failures"] == 0, scenario  # behaviour, not timing
    assert hostile["sync"]["stalled"]["failures"] > 0  # the configuration before: stalled clients starve it
    assert "valid single-row requests while other clients misbehave" in finished.stdout
    project = next(run for run in runs if run["variant"] == "project")
    assert project["checks"]["max_abs_error"] <= 1e-9
    assert project["checks"]["bad_requests"]["unexpected"] == []
    assert set(project["checks"]["bad_requests"]["statuses"]) <= {"400", "413"}
    for run in runs:
        assert run["cold_start_s"] > 0
        assert run["memory"]["workers"] >= 1
        assert run["memory"]["rss_per_worker_mib"] > 0
        for batch in ("1", "1000"):
            assert run["load"][batch]["latency"]["requests"] > 0
    lifecycle = results["summary"]["lifecycle"]
    assert all(lifecycle[stage] >= 0 for stage in ("prep", "train", "evaluate", "register", "deploy", "smoke test"))
    assert lifecycle["total"] > 0
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    for expected in ("project/floor", "project/naive", "project/mlflow", "targets", "load generator ceiling"):
        assert expected in finished.stdout
    rows = {row["key"]: row for row in results["summary"]["startup"]["rows"]}
    assert [rows[key]["runs"] for key in ("pass", "--help", "models list", "make run")] == [1, 1, 1, 1]
    assert "CLI start-up and make run" in finished.stdout
    assert not _bench_processes(marker)


def fake_raw(batches=(1, 100, 1000), clients=(8, 32)) -> dict:
    """Raw results in the shape ``measure`` writes, with made-up numbers."""

    def result(rate: float) -> dict:
        return {"requests_per_second": rate, "p50_ms": 1000 / rate, "p99_ms": 2000 / rate, "errors": 0}

    speed = {"floor": 2000.0, "project": 1900.0, "naive": 600.0, "mlflow": 300.0}
    runs = []
    for rep in range(3):
        for key, rate in speed.items():
            runs.append(
                {
                    "variant": key,
                    "rep": rep,
                    "cold_start_s": 0.4,
                    "memory": {"rss_per_worker_mib": 80.0, "pss_per_worker_mib": 60, "tree_rss_mib": 100, "workers": 1},
                    "load": {
                        str(b): {
                            "latency": result(rate / b**0.3),
                            "throughput": {str(c): result(rate / b**0.5) for c in clients},
                        }
                        for b in batches
                    },
                }
            )
    return {
        "meta": {"machine": "test", "generator": "wrk", "workers": 1, "repetitions": 3, "seconds": 2,
                 "finished": "now"},
        "plan": {"batches": list(batches), "clients": list(clients)},
        "ceiling": [{"latency": result(20_000), "throughput": {str(c): result(18_000) for c in clients}}],
        "runs": runs,
        "lifecycle": [{"startup": 1, "prep": 1, "train": 2, "evaluate": 1, "register": 1, "deploy": 1,
                       "smoke test": 0.5, "other": 1, "total": 8.5}],
        "problems": [],
    }  # fmt: skip


def test_report_ratios_targets_and_docs(tmp_path: Path):
    raw = fake_raw(FULL.batches, FULL.clients)
    summary = report.summarize(raw)
    assert summary["metrics"]["single_row_throughput_vs_floor"] == pytest.approx(0.95)
    assert summary["metrics"]["single_row_throughput_vs_mlflow"] == pytest.approx(1900 / 300)
    verdicts = {t["target"]: t["met"] for t in summary["targets"]}
    assert verdicts["single row: throughput >= 0.9x floor"] is True
    assert verdicts["1000-row batches: rows/s >= 3x naive"] is True
    text = report.render(raw, summary)
    assert "project/floor" in text
    assert "batch 1000: rows/s, 32 clients" in text
    report.plot(tmp_path / "bench.png", summary)
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    docs = tmp_path / "performance.md"
    docs.write_text(f"# title\n\n{report.DOCS_START}\nPLACEHOLDER-TEXT\n{report.DOCS_END}\n\nafter\n")
    report.update_docs(docs, raw, summary, tmp_path / "bench.png")
    written = docs.read_text()
    assert (tmp_path / "performance.png").read_bytes() == (tmp_path / "bench.png").read_bytes()
    assert "](performance.png)" in written
    assert "PLACEHOLDER-TEXT" not in written
    assert "| target | measured | verdict |" in written
    assert written.startswith("# title")
    assert written.endswith("after\n")


def test_docs_have_the_results_markers():
    text = (REPO / "docs" / "performance.md").read_text()
    assert report.DOCS_START in text
    assert report.DOCS_END in text
    assert "](performance.png)" in text
    assert (REPO / "docs" / "performance.png").stat().st_size > 10_000


def test_load_is_only_sent_to_loopback():
    with pytest.raises(load.LoadError, match="only loopback"):
        load.run_load("python", "http://10.0.0.1:80/score", REPO / "pyproject.toml", 1, 0.1, 1)


def test_foreign_cpu_is_measured():
    before = quiet.CpuSnapshot()
    after = quiet.CpuSnapshot()
    assert os.getpid() in after.ours
    assert quiet.foreign_cpu_seconds(before, after) >= 0


@pytest.mark.skipif(not load.have_wrk(), reason="wrk is not installed (make bench installs it)")
def test_wrk_script_reports_against_the_trivial_server(tmp_path: Path):
    body = tmp_path / "body.json"
    body.write_text('{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}')
    with load.TrivialServer() as trivial:
        result = load.run_load("wrk", trivial.url, body, 2, 1)
    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms


# --- CLI start-up ---------------------------------------------------------------------------------------

#: Lines of a real ``python -X importtime -m amlops models list`` (cut down): children come before their parent.
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       150 |        150 | encodings.utf_8
import time:        60 |         60 |   sitecustomize
import time:        58 |         58 |               org
import time:      1841 |       1841 |         ipaddress
import time:     11307 |      13309 |       urllib.parse
import time:       254 |       6117 |             pydantic._internal._dataclasses
import time:     14186 |      19633 |               pydantic_core.core_schema
import time:       640 |      38609 |       pydantic
import time:       344 |      91217 |       pydantic_settings
import time:      5057 |     239089 |     amlops.core.azure_settings
import time:       600 |     248929 | amlops.cli.main
import time:       908 |    1008353 |                             sklearn.utils.fixes
import time:       507 |    1446967 |             sklearn
import time:       329 |     424101 |           azureml.mlflow._client.artifact.run_artifact_client
import time:      8251 |    1651338 | mlflow
no versions of my-model registered yet
"""


def test_importtime_lines_are_parsed_with_their_depth():
    entries = startup.parse_importtime(IMPORTTIME)
    assert entries[0] == ("encodings.utf_8", 0, 150)
    assert ("urllib.parse", 3, 13309) in entries
    assert ("amlops.cli.main", 0, 248929) in entries
    assert ("org", 7, 58) in entries
    assert len(entries) == 15  # not the header, not the command's own output
    summary = startup.import_summary(entries, top=3)
    assert summary["heavy"] == ["mlflow", "sklearn"]
    assert summary["slowest"] == [["mlflow", 1.651], ["sklearn", 1.447], ["azureml", 0.424]]
    tiny = startup.import_summary([e for e in entries if e[0] in ("sitecustomize", "org", "json")])
    assert tiny == {"modules": 2, "heavy": [], "slowest": []}


def test_importtime_of_a_real_interpreter_is_parsed():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import json"], capture_output=True, text=True, check=True
    )
    names = [name for name, _, _ in startup.parse_importtime(done.stderr)]
    assert "json" in names
    assert "json.decoder" in names
    assert startup.heavy_modules(names) == []


def test_heavy_modules_match_packages_not_prefixes():
    modules = ["mlflowish", "azure.core.pipeline", "azure.ai.ml.entities", "scipy", "pandas_flavor", "sklearn.base"]
    assert startup.heavy_modules(modules) == ["sklearn", "scipy", "azure.ai.ml"]


def fake_startup() -> tuple[dict, list[dict]]:
    """Start-up rounds in the shape ``bench.startup.measure`` returns, with made-up numbers."""
    rounds = [
        {"pass": 0.02, "--help": 0.08, "models list": 3.0, "foreign_cpu_cores": 0.0},
        {"pass": 0.03, "--help": 0.09, "models list": 3.6, "foreign_cpu_cores": 0.2},
        {"pass": 0.04, "--help": 0.40, "models list": 3.3, "foreign_cpu_cores": 0.1},
    ]
    imports = {
        "--help": {"modules": 120, "heavy": [], "slowest": [["pydantic", 0.04]]},
        "models list": {"modules": 4000, "heavy": ["mlflow", "pandas"], "slowest": [["mlflow", 2.1]]},
    }
    lifecycle_runs = [{"total": 5.0}, {"total": 3.0}, {"total": 3.5}]
    return {"rounds": rounds, "registry": "empty", "imports": imports}, lifecycle_runs


def test_startup_summary_ratios_targets_and_tables(tmp_path: Path):
    measured, lifecycle_runs = fake_startup()
    summary = startup.summarize(measured, lifecycle_runs)
    rows = {row["key"]: row for row in summary["rows"]}
    assert summary["baseline_s"] == pytest.approx(0.03)
    assert rows["--help"]["median_s"] == pytest.approx(0.09)
    assert rows["--help"]["ratio"] == pytest.approx(3.0)
    assert (rows["--help"]["min_s"], rows["--help"]["max_s"]) == (0.08, 0.40)
    assert rows["--help"]["met"] is True
    assert rows["models list"]["ratio"] == pytest.approx(110.0)
    assert rows["models list"]["met"] is False
    assert rows["make run"]["median_s"] == pytest.approx(3.5)
    assert rows["make run"]["met"] is True
    assert rows["pass"]["met"] is None
    assert summary["missed"] == ["models list"]
    assert summary["foreign_cpu_cores"] == pytest.approx(0.1)
    text = "\n".join(report.startup_lines(summary))
    for expected in ("python -c pass", "amlops --help", "amlops models list", "make run", "110×", "NOT MET"):
        assert expected in text
    assert "none of them" in text
    assert "slowest imports of `--help` (-X importtime): pydantic 0.04 s" in text
    assert "target missed: models list" in text

    measured["imports"]["--help"]["heavy"] = ["pandas"]
    assert startup.summarize(measured, lifecycle_runs)["missed"] == ["models list", "--help imports"]
    assert startup.summarize(None, []) == {}
    assert "not measured" in report.startup_lines({})[0]


def test_startup_table_goes_into_the_docs_alone_or_with_the_results(tmp_path: Path):
    measured, lifecycle_runs = fake_startup()
    raw = fake_raw(FULL.batches, FULL.clients) | {"startup": measured, "lifecycle": lifecycle_runs}
    docs = tmp_path / "performance.md"
    docs.write_text(f"# title\n\n{report.DOCS_START}\nOLD RESULTS\n{report.DOCS_END}\n\nafter\n")
    summary = report.summarize(raw)
    report.update_startup_docs(docs, raw, summary["startup"])  # no start-up block yet: added, results kept
    written = docs.read_text()
    assert "OLD RESULTS" in written
    assert written.index(report.STARTUP_START) < written.index(report.STARTUP_END) < written.index(report.DOCS_END)
    assert "| amlops models list | 110× |" in written
    assert "**not met**" in written

    report.plot(tmp_path / "bench.png", summary)
    report.update_docs(docs, raw, summary, tmp_path / "bench.png")  # the whole section, start-up block included
    written = docs.read_text()
    assert "OLD RESULTS" not in written
    assert written.count(report.STARTUP_START) == 1
    assert "| make run |" in written
    assert written.endswith("after\n")

    summary["startup"]["rows"][0]["median_s"] = 0.5  # only the start-up block changes
    before = written.split(report.STARTUP_START)[0]
    report.update_startup_docs(docs, raw, summary["startup"])
    assert docs.read_text().split(report.STARTUP_START)[0] == before
    assert "| python -c pass | 1× | 0.5 |" not in written
    assert "| python -c pass | 1× | 0.5 |" in docs.read_text()


def test_startup_measurement_runs_the_cli_and_help_imports_nothing_heavy(tmp_path: Path):
    """One real round (no make run): every command ran, and ``--help`` imported none of ``startup.HEAVY``."""
    measured, lifecycle_runs = startup.measure(tmp_path, rounds=1, make_runs=0, log=lambda message: None)
    assert lifecycle_runs == []
    assert measured["registry"].startswith("empty")
    summary = startup.summarize(measured, lifecycle_runs)
    rows = {row["key"]: row for row in summary["rows"]}
    for key in ("pass", "--help", "models list"):
        assert rows[key]["runs"] == 1
        assert rows[key]["median_s"] > 0
    assert rows["make run"]["runs"] == 0
    assert measured["imports"]["--help"]["modules"] > 0
    assert measured["imports"]["models list"]["modules"] > measured["imports"]["--help"]["modules"]
    assert summary["help_heavy"] == [], f"`python -m amlops --help` imported {summary['help_heavy']}"
    assert "mlflow" in measured["imports"]["models list"]["heavy"]  # the check sees heavy imports when they happen
    lines = report.startup_lines(summary)
    assert sum(label in "\n".join(lines) for label in ("python -c pass", "amlops --help", "amlops models list")) == 3
