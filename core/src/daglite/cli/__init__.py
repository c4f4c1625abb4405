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

    try:
        status = run_command(tokens)
        sys.stdout.flush()  # a closed pipe shows here, not in the flush at exit
    except BrokenPipeError:  # `daglite plugins | head`: the reader has gone, as for any tool
        status = _reader_gone()
    if argv is None:
        sys.exit(status)
    return status


#: The status of a program ended by SIGPIPE, as a shell reports it (128 + 13).
SIGPIPE_STATUS = 141


def _reader_gone() -> int:
    """End quietly after the reader of standard output closed it; the status of SIGPIPE."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit must not fail again
    os.close(devnull)
    return SIGPIPE_STATUS
