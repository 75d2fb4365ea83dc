"""A REST client for the real-time endpoint, as an application would write it.

It sends ``{"data": rows}`` with the endpoint key (when there is one) as a bearer token, retries
connection failures and 429/502/503/504 answers with back-off, and turns every other failure into a
:class:`ScoringError`: the status and the server's message, an endpoint it could not reach, or an answer
that is not JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from amlops.core.errors import EXIT_SMOKE_FAILED, AmlopsError

RETRY_STATUSES = (429, 502, 503, 504)


class ScoringError(AmlopsError, RuntimeError):
    """The endpoint refused or failed a request, could not be reached, or did not answer JSON.

    ``status`` is the HTTP status, or ``None`` when no answer came.
    """

    exit_code = EXIT_SMOKE_FAILED
    prefix = "smoke test failed: "

    def __init__(self, status: int | None, message: str):
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class ScoringClient:
    """Calls one scoring URI.

    Args:
        scoring_uri: The ``/score`` URL.
        key: Endpoint key or token; sent as ``Authorization: Bearer <key>`` when given.
        timeout: Seconds to wait for each answer.
        retries: Retries for connection errors and retryable statuses.
    """

    def __init__(self, scoring_uri: str, key: str | None = None, timeout: float = 10.0, retries: int = 3):
        self.scoring_uri = scoring_uri
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            backoff_factor=0.2,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers["Content-Type"] = "application/json"
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def __repr__(self) -> str:  # never show the key
        return f"ScoringClient({self.scoring_uri!r})"

    def post(self, body: bytes | str, content_type: str = "application/json") -> requests.Response:
        """Send a raw body and return the response whatever its status."""
        return self.session.post(
            self.scoring_uri, data=body, timeout=self.timeout, headers={"Content-Type": content_type}
        )

    def score(self, rows: Sequence[Sequence[float]] | Sequence[dict[str, float]]) -> dict[str, Any]:
        """Score rows (lists of numbers in column order, or records keyed by column name).

        Returns:
            The response: ``{"predictions": [...], "model": {"name": ..., "version": ...}}``.

        Raises:
            ScoringError: for any non-2xx answer (with the server's message), no answer, or one that is not JSON.
        """
        return self._json("POST", self.scoring_uri, json={"data": list(rows)})

    def swagger(self, version: str = "2") -> dict[str, Any]:
        """The service's swagger/OpenAPI document."""
        base = self.scoring_uri.rsplit("/score", 1)[0]
        return self._json("GET", f"{base}/swagger.json", params={"version": version})

    def _json(self, method: str, url: str, **options: Any) -> Any:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **options)
        except requests.RequestException as error:  # refused, reset, timed out: after the retries
            raise ScoringError(
                None, f"no answer from {url} ({type(error).__name__}, after {self.retries} retries): {error}"
            ) from None
        if not response.ok:
            raise ScoringError(response.status_code, error_message(response))
        try:
            return response.json()
        except ValueError:
            raise ScoringError(
                response.status_code, f"the answer from {url} is not JSON: {response.text[:200]!r}"
            ) from None


def error_message(response: requests.Response) -> str:
    """The ``message`` of a JSON error body, or the raw text."""
    try:
        return str(response.json().get("message", response.text))
    except (ValueError, AttributeError):
        return response.text[:500]


def measure_latencies(client: ScoringClient, rows: Sequence[Sequence[float]], count: int) -> list[float]:
    """Send the same request ``count`` times, one after another, and return each latency in milliseconds."""
    body = json.dumps({"data": [list(row) for row in rows]})
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(body)
        latencies.append((time.perf_counter() - started) * 1000.0)
        if not response.ok:
            raise ScoringError(response.status_code, error_message(response))
    return latencies
