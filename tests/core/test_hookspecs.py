"""Hook specifications: every hook a plugin object can implement is documented."""

from __future__ import annotations

from daglite import hookspecs


def test_every_hookspec_is_documented():
    specs = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "daglite_spec")]
    assert set(specs) == {
        "on_session_start",
        "on_session_end",
        "on_worker_start",
        "before_task",
        "after_task",
        "on_task_error",
        "on_task_retry",
        "on_cache_hit",
        "before_dataset_save",
        "after_dataset_save",
        "before_dataset_load",
        "after_dataset_load",
    }
    assert all(getattr(hookspecs, name).__doc__ for name in specs)
