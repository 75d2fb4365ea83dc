"""``python -m amlops.azure``: the Azure commands on their own (the same as ``python -m amlops azure``)."""

from amlops.azure.cli import main

raise SystemExit(main())
