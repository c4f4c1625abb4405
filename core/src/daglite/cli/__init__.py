"""The `daglite` command line (`daglite --help`).

Only the `daglite` console script imports this package: `import daglite` never loads the
CLI library (cyclopts), and `daglite --version` does not either.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The `daglite` console script; returns (and, without `argv`, exits with) the status.

    Args:
        argv: The arguments (`sys.argv[1:]` by default).
    """
    import sys

    tokens = list(sys.argv[1:] if argv is None else argv)
    if tokens == ["--version"]:
        from daglite import __version__

        print(__version__)
        return 0
    from daglite.cli.app import run_command

    status = run_command(tokens)
    if argv is None:
        sys.exit(status)
    return status
