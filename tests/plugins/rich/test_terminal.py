"""A pipeline run under a real pseudo-terminal: what the screen shows during and after it."""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pexpect
import pyte
import pytest

ROWS, COLUMNS = 30, 110

PIPELINE = textwrap.dedent(
    """
    import time

    from daglite import map_tasks, session, task, workflow
    from daglite.settings import DagliteSettings


    @task
    def square(x: int) -> int:
        time.sleep(0.03)
        if x == 7:
            print("hello from item 7")
        return x * x


    @task(retries=1, retry_delay=0.0)
    def check(x: int) -> int:
        if x == 3:
            raise ValueError(f"item {x} is broken")
        return x


    @task
    def total(values: list[int]) -> int:
        return sum(values)


    @workflow
    def pipeline(n: int) -> int:
        squares = map_tasks(square, range(n), backend="thread")
        map_tasks(check, iter(range(6)), return_exceptions=True)
        return total(squares)


    with session(plugins=["rich"], settings=DagliteSettings(max_workers=2)):
        print("result", pipeline(30))
    """
)


def run_in_terminal(script: str, cwd) -> tuple[bytes, int]:
    path = cwd / "pipeline.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGLITE_", "NO_COLOR"))}
    env.update(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    child = pexpect.spawn(
        sys.executable,
        [str(path)],
        cwd=str(cwd),
        env=env,
        dimensions=(ROWS, COLUMNS),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    return output, child.exitstatus


def final_screen(output: bytes) -> list[str]:
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


@pytest.mark.timeout(60)
def test_pipeline_under_a_pseudo_terminal(tmp_path):
    output, status = run_in_terminal(PIPELINE, tmp_path)
    assert status == 0, output.decode(errors="replace")

    # While it ran, the bar of the thread map was drawn (with its item count) and coloured.
    plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", output)
    assert re.search(rb"square \(thread\) [^\r\n]*?\d+/30", plain)
    assert b"workflow pipeline" in plain
    assert b"\x1b[" in output

    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in final_screen(output)]
    text = "\n".join(lines)
    assert "━" not in text, "no bar is left on screen"
    assert "daglite session (" not in text, "no status row is left on screen"
    assert "hello from item 7" in lines, "a task's print is one whole line"
    assert re.search(r"^✔ map square: 30/30 items in ", text, re.M)
    assert re.search(r"^↻ check\[3\] attempt 1 failed \(ValueError: item 3 is broken\)", text, re.M)
    assert re.search(
        r"^✘ check\[3\] failed after 2 attempts .*ValueError: item 3 is broken", text, re.M
    )
    assert re.search(r"^✘ map check: 6 items in .* 1 failed$", text, re.M)
    assert re.search(r"^✔ workflow pipeline finished in ", text, re.M)
    assert "result 8555" in lines
    assert re.fullmatch(
        r"✔ daglite session finished in .+: 37 tasks run, 0 cache hits, 1 failure, 1 retry, 2 maps",
        lines[-1],
    )


RECORDS = textwrap.dedent(
    """
    from daglite import get_logger, map_tasks, session, task


    @task
    def check(x: int) -> int:
        if x == 2:
            get_logger().warning("suspicious value", x=x)
        if x == 3:
            get_logger().info("halfway there")
        if x == 4:
            get_logger().debug("not shown at the info level")
        return x


    if __name__ == "__main__":
        with session(plugins=["rich"]):
            map_tasks(check, range(3), backend="thread")
            map_tasks(check, range(2, 5), backend="process")
        print("done")
    """
)


@pytest.mark.timeout(90)
def test_user_records_show_above_the_bars(tmp_path):
    output, status = run_in_terminal(RECORDS, tmp_path)
    assert status == 0, output.decode(errors="replace")
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in final_screen(output)]
    text = "\n".join(lines)
    # From a thread and from a worker process alike, one line per record, with its task.
    assert re.search(r"^W check\[2\] suspicious value x=2$", text, re.M), text  # thread
    assert re.search(r"^W check\[0\] suspicious value x=2$", text, re.M), text  # process
    assert re.search(r"^I check\[1\] halfway there$", text, re.M), text
    assert "not shown" not in text
    assert "done" in lines
