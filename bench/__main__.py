"""``python -m bench``."""

from amlops.core.processes import unwind_on_sigterm
from bench.run import main

unwind_on_sigterm()
raise SystemExit(main())
