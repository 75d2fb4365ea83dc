"""``make run`` end to end in a temporary copy of the repository, and the CLI as users call it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from amlops.core import contract
from tests.support.checkout import REPO, clean_env, clone_checkout, on_a_free_port
from tests.support.scoring import first_row

pytestmark = pytest.mark.integration

#: The root's model, whatever it is: ``make run`` trains, registers and serves it.
ROOT = contract.in_root(REPO)
_, ROW = first_row(REPO)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository in a path with a space, sharing this checkout's installed ``.venv``.

    Commands run inside it import the copy's own ``amlops`` (the working directory comes first on
    ``sys.path``), so all state lands in the copy.
    """
    return clone_checkout(tmp_path_factory.mktemp("clone") / "my repo")


def _amlops(clone: Path, *argv: str) -> subprocess.CompletedProcess:
    """``.venv/bin/python -m amlops ARGV`` in the clone, which must succeed."""
    return subprocess.run(
        [".venv/bin/python", "-m", "amlops", *argv],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _make(clone: Path, *targets: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", *targets, "ENV_READY=1"],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _processes_under(folder: Path) -> list[int]:
    """PIDs whose working directory or command line mentions ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(900)  # two whole `make run`s (pipeline, deploy, smoke test, promote) of up to 300 s each
def test_make_run_twice(clone: Path):
    first = _make(clone, "run")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "production version 1  (new: v1, promoted after its smoke test)" in out
    assert "gate         REGISTER" in out
    assert re.search(rf"candidate    .*\b{ROOT.metric.name} -?\d+(\.\d+)?(e[-+]\d+)?\s", out)  # 4 digits: 1 is 1.0
    assert "smoke test   passed" in out
    endpoint = re.search(r"endpoint     (http://127\.0\.0\.1:\d+/score)", out)
    assert endpoint, out
    assert "curl -s -X POST http://127.0.0.1:" in out
    browse = next(line for line in out.splitlines() if "mlflow ui" in line).split(":  ", 1)[1]
    assert shlex.split(browse)[-1] == f"sqlite:///{clone / '.mlops' / 'mlflow.db'}"  # one argument, space and all
    # The endpoint is stopped and nothing is left running.
    with pytest.raises(requests.ConnectionError):
        requests.post(endpoint[1], json={"data": [[1] * len(ROW)]}, timeout=2)
    assert _processes_under(clone) == []
    assert (clone / ".mlops" / "mlflow.db").is_file()

    second = _make(clone, "run")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "production version 1  (unchanged)" in second.stdout
    assert "gate         KEEP" in second.stdout
    assert "production v1 stays" in second.stdout
    assert _processes_under(clone) == []

    models = _amlops(clone, "models", "list", "--json")
    versions = json.loads(models.stdout)
    assert [(v["version"], v["production"]) for v in versions] == [("1", True)]
    assert versions[0]["tags"]["data_sha256"] == (clone / f"{ROOT.data}.sha256").read_text().split()[0]


def test_make_serve_answers_until_interrupted(clone: Path):
    if not (clone / ".mlops" / "mlflow.db").exists():
        assert _make(clone, "pipeline").returncode == 0
    port_config = on_a_free_port(clone, "deploymentConfig.serve-test.yml")
    serve = subprocess.Popen(
        [".venv/bin/python", "-m", "amlops", "serve", "--config", str(port_config)],
        cwd=clone,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = serve.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/score)", line)
        assert match, line + serve.stderr.read()
        assert "smoke test passed" in line
        while "Ctrl-C stops it." not in line:  # said once the command waits as a small process
            line = serve.stdout.readline()
            assert line, serve.stderr.read()
        answer = requests.post(match[1], json={"data": [ROW]}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["model"] == {"name": ROOT.name, "version": "1"}
        # While it serves, the command waits as a small process: the whole tree within 1.5x the server's.
        from bench.servers import process_tree

        server = process_tree(serve.pid)[1]  # its one child: gunicorn's master
        assert _tree_rss(serve.pid) <= 1.5 * _tree_rss(server)
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=30)
    assert code == 0, serve.stderr.read()
    shown = _amlops(clone, "models", "show", "1", "--json")
    served = [d for d in json.loads(shown.stdout)["deployments"] if (d["target"], d["endpoint"]) == ("local", "local")]
    assert [d["status"] for d in served] == ["undeployed"]
    deadline = time.monotonic() + 10
    while _processes_under(clone) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_under(clone) == []


def _tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB."""
    from bench.servers import memory_kib, process_tree

    return sum(memory_kib(member).get("rss", 0) for member in process_tree(pid))


def test_make_help_lists_the_targets(clone: Path):
    done = _make(clone, "help", timeout=30)
    assert done.returncode == 0
    for target in ("run", "test", "serve", "release", "approve", "lint", "help"):
        assert re.search(rf"\b{target}\b", done.stdout), target


def test_validate_reports_a_bad_file_by_column_and_rule(clone: Path, tmp_path: Path):
    import pandas as pd

    column = next(column for column in ROOT.features if column.range)
    low, high = column.range
    frame = pd.read_csv(clone / ROOT.data)
    frame.loc[5, column.name] = high + 1000
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    done = subprocess.run(
        [".venv/bin/python", "-m", "amlops", "validate", "--data", str(bad)],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"column '{column.name}': in_range({float(low)}, {float(high)})" in done.stderr
    assert "Traceback" not in done.stderr
