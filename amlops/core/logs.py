"""Logging set-up and the one place expected failures become exit codes (the CLI and every step use it)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from amlops.core.errors import EXIT_BAD_INPUT, AmlopsError

if TYPE_CHECKING:
    from pydantic import ValidationError

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
    except AmlopsError as error:
        log.error("%s%s", error.prefix, error)
        return error.exit_code
    except (FileNotFoundError, LookupError) as error:
        log.error("%s", error)
        return EXIT_BAD_INPUT
    except ValueError as error:
        if not _is_validation_error(error):
            raise
        log.error("%s", explain_settings_error(error))
        return EXIT_BAD_INPUT


def _is_validation_error(error: BaseException) -> bool:
    """Whether ``error`` is pydantic's ``ValidationError``, without importing pydantic (``--help`` does not need it).

    Such an error can only exist once pydantic is imported, so ``pydantic_core`` not yet imported means it is not one.
    """
    core = sys.modules.get("pydantic_core")
    return core is not None and isinstance(error, core.ValidationError)


def explain_settings_error(error: ValidationError) -> str:
    """Name the environment variable behind each invalid setting (``AMLOPS_DATA_MIN_ROWS: ...``).

    The settings class is the one the error is titled after (any ``BaseSettings``, e.g. those of
    :mod:`amlops.core.settings` and :mod:`amlops.core.azure_settings`); any other validation error is shown as is.
    """
    from pydantic_settings import BaseSettings  # already imported: a settings class raised the error

    classes, todo = {}, [BaseSettings]
    while todo:
        for cls in todo.pop().__subclasses__():
            if cls.__name__ not in classes or cls.__module__.startswith("amlops."):  # ours win a name clash
                classes[cls.__name__] = cls
            todo.append(cls)
    settings_class = classes.get(error.title)
    if settings_class is None:
        return str(error)
    prefix = settings_class.model_config.get("env_prefix", "")
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        lines.append(f"environment variable {prefix}{field.upper()}={item.get('input')!r}: {item['msg']}")
    return "\n".join(lines)


def run_step(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a step's ``main`` with logging set up and expected failures turned into clear exit codes."""
    setup_logging()
    return guarded(lambda: main(argv))
