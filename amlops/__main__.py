"""``python -m amlops``."""

from amlops.cli import main
from amlops.serving.local import unwind_on_sigterm

unwind_on_sigterm()
raise SystemExit(main())
