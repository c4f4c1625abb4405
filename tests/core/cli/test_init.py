"""The `daglite` console script itself (`daglite.cli.main`)."""

from __future__ import annotations

import os
import subprocess

import daglite
from daglite.cli import SIGPIPE_STATUS

from .conftest import _command
from .conftest import _env


def test_a_reader_that_closed_stdout_ends_the_command_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)  # like `daglite plugins | head -1` once head has exited
    try:
        done = subprocess.run(
            [*_command(), "plugins"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(),
            timeout=60,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == SIGPIPE_STATUS == 141


def test_version_prints_the_version_of_the_core():
    done = subprocess.run(
        [*_command(), "--version"], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{daglite.__version__}\n", "")
