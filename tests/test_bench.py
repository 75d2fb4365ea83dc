"""``make bench`` cannot rot: its quick mode runs end to end here (nothing about its timings is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench import load, quiet, report
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
    assert {run["variant"] for run in runs} == {"floor", "project", "naive", "mlflow"}
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
