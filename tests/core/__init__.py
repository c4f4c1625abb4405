"""Tests of the core, laid out like `core/src/daglite`: one file per module.

`daglite/X.py` -> `test_X.py`; `daglite/backends/Y.py` -> `backends/test_Y.py` (likewise
`cli/`, `processors/`, `report/`; a package's `__init__.py` -> `test_init.py`). A test of
end-to-end behaviour lives with the module that owns the behaviour. Cross-cutting files
stay here under their own names: `test_api_contract.py` (the public API reference, name by
name) and `test_plugin_boundary.py` (the AST scan of what first-party plugins import).

The folders are packages (so test files may share a basename across folders); `support/`
holds the task modules that worker processes import by name (they get the coordinator's
`sys.path`, where pytest put `tests/`).
"""
