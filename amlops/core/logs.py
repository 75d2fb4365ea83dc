"""Logging set-up and the one place expected failures become exit codes (the CLI and every step use it)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pydantic import ValidationError

from amlops.core.errors import EXIT_BAD_INPUT, AmlopsError
from amlops.core.settings import explain_settings_error

log = logging.getLogger("amlops")


def setup_logging(verbose: bool = False) -> None:
    """Progress on stderr, one line per event."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``; expected failures log their message (no traceback) and return their exit code.

    Expected are the project's own errors (:class:`~amlops.core.errors.AmlopsError`), an invalid ``AMLOPS_*``
    setting, and a missing file or registry entry (bad input, exit 2). Anything else keeps its traceback.
    """
    try:
        return action()
    except ValidationError as error:
        log.error("%s", explain_settings_error(error))
        return EXIT_BAD_INPUT
    except AmlopsError as error:
        log.error("%s%s", error.prefix, error)
        return error.exit_code
    except (FileNotFoundError, LookupError) as error:
        log.error("%s", error)
        return EXIT_BAD_INPUT


def run_step(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a step's ``main`` with logging set up and expected failures turned into clear exit codes."""
    setup_logging()
    return guarded(lambda: main(argv))
