"""``make bench``: latency, throughput, cold start and memory of the scoring endpoint, and `make run` time.

Not a test: it measures and reports (``python -m bench``; ``--quick`` is the smoke run the tests make).
See ``docs/performance.md``.
"""
