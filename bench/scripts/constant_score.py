"""The floor: an entry script that answers a constant without reading the request.

Whatever the inference server costs per request (HTTP parsing, Flask, logging, the timeout alarm, JSON
of a small answer) is in this script's numbers; nothing else is.
"""

ANSWER = {"predictions": [152.0], "model": {"name": "constant-floor", "version": "1"}}


def init() -> None:
    """Nothing to load."""


def run(raw_data: str) -> dict:
    """The same answer to every request."""
    return ANSWER
