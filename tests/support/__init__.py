"""Helpers shared by the test suites of every tox env (`tests/` is on `sys.path` in each,
through the root `tests/conftest.py`): they import only the standard library."""
