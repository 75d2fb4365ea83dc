"""Optional soak test: the fork-pool script many times in a row (``python -m bench.soak --runs 200``).

Each run is a fresh interpreter that closes 100 ``multiprocessing`` fork pools with the project's SIGTERM handling
installed (:data:`tests.support.reliability.FORK_SCRIPT`). A run that has not finished within ``--timeout`` seconds
is a hang: it is killed and counted. ``docs/reliability.md`` records a result; the suite runs the script once.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time

from tests.support.reliability import FORK_SCRIPT

log = logging.getLogger("bench.soak")


def soak(runs: int, timeout: float) -> dict[str, int]:
    """Run the fork-pool script ``runs`` times; count the runs that closed every pool, hung or failed."""
    counts = {"closed": 0, "hung": 0, "failed": 0}
    started = time.monotonic()
    for number in range(1, runs + 1):
        try:
            done = subprocess.run(
                [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            counts["hung"] += 1
            log.error("run %d: no answer after %.0f s (a hang)", number, timeout)
            continue
        if done.returncode == 0 and "pools closed" in done.stdout:
            counts["closed"] += 1
        else:
            counts["failed"] += 1
            log.error("run %d: exit code %d: %s", number, done.returncode, done.stderr[-500:])
        if number % 10 == 0:
            log.info("%d/%d runs, %s, %.0f s", number, runs, counts, time.monotonic() - started)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every run closed all its pools."""
    cli = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    cli.add_argument("--runs", type=int, default=200, help="how many runs (default: %(default)s)")
    cli.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as hung")
    args = cli.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    counts = soak(args.runs, args.timeout)
    log.info("%d runs: %d closed every pool, %d hung, %d failed", args.runs, *counts.values())
    return 0 if counts["closed"] == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
