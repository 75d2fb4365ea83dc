"""What ``python -m amlops serve`` becomes once its endpoint serves: a small process that waits.

Starting the endpoint imports MLflow, scikit-learn and pandas (staging, the smoke test, the registry), and a
process that kept them while it waits would hold several times the memory of the server it watches. So once the
endpoint serves, the command replaces itself with this module (``exec``: the same process, terminal and process
id, the server still its child), which imports only the standard library while it waits. On Ctrl-C or SIGTERM it
stops the server; when the server stops by itself, it says so. Either way ``python -m amlops undeploy`` then
records ``undeployed`` on the version (that process imports the registry, at the end).

``python -m amlops.cli.watch STATE_FILE``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def wait(pid: int) -> int | None:
    """Wait until SIGINT or SIGTERM arrives (``None``) or the child ``pid`` exits (its exit code).

    ``serve`` blocks both signals before it becomes this process: one that arrived meanwhile is handled here.
    """
    stop = threading.Event()
    stopping = (signal.SIGINT, signal.SIGTERM)
    for signum in stopping:
        signal.signal(signum, lambda *_: stop.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
    sys.stdout.write("Ctrl-C stops it.\n")
    sys.stdout.flush()
    exited: list[int] = []

    def reap() -> None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by the stopping code below
            return
        exited.append(os.waitstatus_to_exitcode(status))
        stop.set()

    threading.Thread(target=reap, name="reap-server", daemon=True).start()
    while not stop.wait(0.5):  # a timeout, so that the main thread runs the signal handlers promptly
        pass
    return exited[0] if exited else None


def main(argv: list[str] | None = None) -> int:
    """Wait for the endpoint recorded in the state file, then stop it and record it."""
    cli = argparse.ArgumentParser(prog="python -m amlops.cli.watch", description=__doc__.splitlines()[0])
    cli.add_argument("state", type=Path, help="the endpoint's state file")
    recorded = json.loads(cli.parse_args(argv).state.read_text())
    exit_code = wait(recorded["pid"])
    undeploy = subprocess.run([sys.executable, "-m", "amlops", "undeploy", "--name", recorded["name"]], check=False)
    if exit_code is not None:
        sys.stderr.write(f"the server exited with code {exit_code}; see {recorded['log_file']}\n")
        return 1
    return undeploy.returncode


if __name__ == "__main__":
    sys.exit(main())
