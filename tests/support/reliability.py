"""Scripts that reproduce process-level failures, shared by the reliability tests and ``python -m bench.soak``."""

from __future__ import annotations

#: 100 fork pools in a row, each closed while its idle workers may have just been forked: the pool stops them with
#: SIGTERM, so a worker that lost the signal hangs the pool (the suite's old intermittent hang).
FORK_SCRIPT = """
import multiprocessing
from amlops.core.processes import unwind_on_sigterm

unwind_on_sigterm()
for _ in range(100):  # a pool stops its idle workers with SIGTERM when it exits
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
print("pools closed", flush=True)
"""
