"""Finding workflows from a command-line TARGET."""

from __future__ import annotations


def test_split_target():
    from daglite.cli.targets import split_target

    assert split_target("pkg.mod:wf") == ("pkg.mod", "wf")
    assert split_target("path/to/file.py:wf") == ("path/to/file.py", "wf")
    assert split_target("pkg.mod") == ("pkg.mod", None)
    assert split_target("C:/x/file.py") == ("C:/x/file.py", None)
