"""``python -m amlops``: argument parsing and printing. Nothing imports this package."""
