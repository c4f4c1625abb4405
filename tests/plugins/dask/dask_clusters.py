"""Helpers of the dask plugin tests: a dask cluster started from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


class CliCluster:
    """`dask scheduler` and `dask worker` processes started from the command line on loopback.

    Args:
        folder: Where the scheduler file and the processes' logs go.
        workers: How many `dask worker` processes (one single-threaded worker each).
        env: Extra environment variables for every process (e.g. dask config).
    """

    def __init__(self, folder, workers=2, env=None):
        dask = str(Path(sys.executable).parent / "dask")
        self.environ = {**os.environ, **(env or {})}
        self.folder = folder
        scheduler_file = folder / "scheduler.json"
        common = ["--host", "127.0.0.1", "--no-dashboard"]
        self.processes = [
            self._start(
                "scheduler",
                [dask, "scheduler", "--port", "0", "--scheduler-file", str(scheduler_file)]
                + common,
            )
        ]
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"dask scheduler did not start: {self.log('scheduler')}")
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for n in range(workers):
            command = [dask, "worker", self.address, "--nthreads", "1", "--nworkers", "1"]
            self.processes.append(self._start(f"worker{n}", command + common))
        self.wait_for_workers(workers)

    def _start(self, name, command):
        with open(self.folder / f"{name}.log", "wb") as log:
            return subprocess.Popen(command, stdout=log, stderr=log, env=self.environ)

    def log(self, name):
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def wait_for_workers(self, count, timeout=60):
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)

    def close(self):
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except Exception:
                process.kill()
                process.wait()
