"""``python -m amlops``."""

from amlops.cli.main import main
from amlops.core.processes import unwind_on_sigterm

unwind_on_sigterm()
raise SystemExit(main())
