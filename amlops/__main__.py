"""``python -m amlops``."""

from amlops.cli import main

raise SystemExit(main())
