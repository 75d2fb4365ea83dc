"""One error base for the whole package: what the CLI exits with and, where it applies, the HTTP status.

Every error the project raises on purpose derives from :class:`AmlopsError` (and, for callers that expect it, the
built-in it always was: ``LookupError``, ``ValueError``...). ``python -m amlops`` prints its message without a
traceback and exits with its :attr:`~AmlopsError.exit_code` (``docs/reference/commands.md`` lists the codes).
"""

from __future__ import annotations

#: Exit codes: 0 success, 1 unexpected failure, 2 bad input (data, config, arguments; also a refused action, such
#: as deploying or promoting a retired version), 3 smoke test failed, 4 ``models check`` found the model degraded.
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_SMOKE_FAILED = 3
EXIT_DEGRADED = 4


class AmlopsError(Exception):
    """An expected failure with a message that says what to do; unexpected ones keep their traceback."""

    #: What ``python -m amlops`` exits with.
    exit_code: int = EXIT_FAILURE
    #: The HTTP status an endpoint answers with, for errors that reach one.
    http_status: int | None = None
    #: Printed before the message (``smoke test failed: ...``).
    prefix: str = ""


class BadInputError(AmlopsError):
    """Bad data, configuration or arguments, or a refused action: exit code 2, HTTP 400."""

    exit_code = EXIT_BAD_INPUT
    http_status = 400
