"""``python -m amlops <command>``: one command per lifecycle stage.

The Makefile, the notebooks and the CI/CD pipelines all call these commands, so every stage can be run
and tested on a laptop exactly as automation runs it. The commands are listed in ``docs/reference/commands.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from amlops.cli.parser import parser
from amlops.core.logs import guarded, setup_logging


def handler(name: str) -> Callable:
    """The function a command names as ``"module:function"`` (a module of :mod:`amlops.cli`), imported now."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(f"amlops.cli.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m amlops``."""
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return guarded(lambda: handler(args.handler)(args))
