"""Code the test modules share: paths into this checkout, fakes of Azure, request bodies, registry helpers.

Test modules import shared code from here only, never from one another or from ``conftest.py``
(``tests/test_suite_rules.py`` checks it). ``conftest.py`` holds the fixtures and hooks.
"""
