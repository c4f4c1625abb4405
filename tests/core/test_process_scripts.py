"""Scripts run in a subprocess: tasks in `__main__`, and Ctrl-C during a map."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(60)

MAIN_TASKS = textwrap.dedent(
    """
    from daglite import map_tasks, session, task

    @task
    def work(x):
        return x + 1

    first_work = work

    @task
    def work(x):  # same function name as the task above
        return x * 10

    def scaler(k):
        @task
        def scale(x):
            return k * x
        return scale

    by_three, by_five = scaler(3), scaler(5)

    # No `if __name__ == "__main__":` guard: workers never import this script.
    with session(backend="process"):
        print(map_tasks(first_work, range(3)))
        print(map_tasks(work, range(3)))
        print(map_tasks(by_three, range(3)), map_tasks(by_five, range(3)))
    """
)

EXPECTED = "[1, 2, 3]\n[0, 10, 20]\n[0, 3, 6] [0, 5, 10]\n"


def test_tasks_defined_in_a_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(MAIN_TASKS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    assert done.stdout == EXPECTED


def test_tasks_defined_in_a_script_read_from_stdin():
    done = subprocess.run(
        [sys.executable, "-"], input=MAIN_TASKS, capture_output=True, text=True, timeout=60
    )
    assert done.stderr == ""
    assert done.stdout == EXPECTED


NAPS = textwrap.dedent(
    """
    import os, sys, time
    from daglite import map_tasks, session, task

    @task
    def nap(x, folder):
        with open(os.path.join(folder, str(os.getpid())), "a") as fh:
            fh.write(f"{x}\\n")
        time.sleep(0.2)
        return x

    folder, backend = sys.argv[1], sys.argv[2]
    with session(backend=backend):
        try:
            map_tasks(nap, range(200), [folder] * 200, chunksize=1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _interrupt(tmp_path, backend: str) -> tuple[float, str, list[int], int]:
    """Run the nap script, Ctrl-C it once items run; (seconds to exit, stdout, pids, items)."""
    script = tmp_path / "naps.py"
    script.write_text(NAPS)
    folder = tmp_path / "seen"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - start
    assert proc.returncode == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    pids = [int(p.name) for p in folder.iterdir()]
    items = sum(len(p.read_text().split()) for p in folder.iterdir())
    return took, out, pids, items


def test_ctrl_c_stops_the_process_backend_and_its_workers(tmp_path):
    took, out, pids, items = _interrupt(tmp_path, "process")
    assert took < 2
    assert out == "interrupted\n"
    assert pids and all(not _alive(pid) for pid in pids)
    assert items < 50  # the queued items never ran


def test_ctrl_c_stops_queued_items_of_the_thread_backend(tmp_path):
    took, out, _, items = _interrupt(tmp_path, "thread")
    assert took < 2
    assert out == "interrupted\n"
    assert items < 100
