"""Report pages of real runs on every backend, opened offline in a real headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from report_flows import pipeline

from daglite import map_tasks
from daglite import session
from daglite import task
from daglite.report import build_report
from daglite.settings import DagliteSettings

pytestmark = pytest.mark.timeout(300)

BACKENDS = ["inline", "thread", "process", "loky", "dask"]
FAILED_RED = (0xCF, 0x22, 0x2E)
TIMEOUT_PURPLE = (0x82, 0x50, 0xDF)


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory):
    """One real run of the report pipeline on a backend, and its report page."""
    backend = request.param
    if backend in ("loky", "dask"):
        pytest.importorskip(f"daglite_{backend}")
    tmp = tmp_path_factory.mktemp(backend)
    (tmp / "marks").mkdir()
    settings = DagliteSettings(
        processors=(),
        max_workers=2,
        cache_store=str(tmp / "cache"),
        dataset_store=str(tmp / "datasets"),
    )
    html = tmp / "run.html"
    with session(backend=backend, settings=settings, report=html):
        result = pipeline(str(tmp / "marks"))
    assert result["failed"] == 1 and result["steady"] == [0, 1]
    return backend, html


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def test_the_page_shows_the_run_with_no_error_and_no_request(run, open_report, artifacts):
    backend, html = run
    opened = open_report(html)
    page = opened.page
    assert opened.errors == []
    assert opened.requests == []
    assert text(page, "#title") == "pipeline"
    assert text(page, "#status") == "success"
    assert text(page, "[data-fact='backend']") == backend
    counts = {
        name: text(page, f"[data-count='{name}'] b")
        for name in ("calls", "succeeded", "cached", "failed", "retried", "timed out")
    }
    # 6 work + 6 flaky + 2 wobbly + 3 cached + 2 nested + 5 work inside them + 1 stuck
    assert counts == {
        "calls": "25",
        "succeeded": "22",
        "cached": "1",
        "failed": "2",
        "retried": "3",
        "timed out": "1",
    }
    if backend == "process":
        page.screenshot(path=str(artifacts / "report-process.png"), full_page=True)


def test_one_lane_per_worker(run, open_report):
    backend, html = run
    page = open_report(html).page
    lanes = page.locator(".lane.worker").all_inner_texts()
    assert lanes[0] == f"pid {os.getpid()} · MainThread (coordinator)"
    workers = lanes[1:]
    if backend == "inline":
        assert workers == []
        return
    assert workers
    pids = {int(re.match(r"pid (\d+) · ", lane).group(1)) for lane in workers}
    if backend == "thread":
        assert pids == {os.getpid()}
        assert all(" · daglite-thread" in lane for lane in workers)
    else:
        assert os.getpid() not in pids
    assert page.locator("#gantt").get_attribute("data-lanes") == str(len(lanes))
    assert page.locator("#gantt").get_attribute("data-bars") == "25"


def test_failed_and_timed_out_bars_are_drawn_in_their_colours(run, open_report):
    _, html = run
    page = open_report(html).page
    found = page.evaluate(
        """(colours) => {
            const c = document.getElementById("gantt");
            const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            return colours.map(([r, g, b]) => {
                let n = 0;
                for (let i = 0; i < px.length; i += 4)
                    if (px[i] === r && px[i + 1] === g && px[i + 2] === b) n++;
                return n;
            });
        }""",
        [FAILED_RED, TIMEOUT_PURPLE],
    )
    assert all(n > 0 for n in found), found


def test_hovering_a_bar_names_the_call(run, open_report):
    _, html = run
    page = open_report(html).page
    index = page.evaluate(
        """() => { const b = window.dagliteReport.data.sessions[0].bars;
                   return b.o.findIndex((o) => b.outcomes[o] === "failed"); }"""
    )
    # zoom in on the bar with the mouse wheel, as a user would, until it is wide enough
    box = page.evaluate(f"window.dagliteReport.barBox({index})")
    for _ in range(40):
        if box["width"] >= 12:
            break
        view = page.evaluate("window.dagliteReport.view()")
        page.mouse.move(box["x"], box["y"])
        page.mouse.wheel(0, -100)
        page.wait_for_function(
            "(span) => { const v = window.dagliteReport.view(); return v.end - v.start < span; }",
            arg=view["end"] - view["start"],
            timeout=5_000,
        )
        box = page.evaluate(f"window.dagliteReport.barBox({index})")
    assert box["width"] >= 12
    page.mouse.move(box["x"], box["y"])
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    tip = tooltip.inner_text()
    assert "task: flaky" in tip and "map index: 3" in tip
    assert "outcome: failed" in tip and "attempts: 2" in tip


def test_zooming_narrows_the_time_axis(run, open_report):
    _, html = run
    page = open_report(html).page

    def axis_span() -> int:
        return len(page.locator("#axis span").all_inner_texts())

    before = page.locator("#axis span").all_inner_texts()
    for _ in range(4):
        page.click("#zoom-in")
    after = page.locator("#axis span").all_inner_texts()
    assert after != before and axis_span() > 0
    page.click("#zoom-reset")
    assert page.locator("#axis span").all_inner_texts() == before


def test_failures_show_the_arguments_the_retries_and_the_traceback(run, open_report):
    _, html = run
    page = open_report(html).page
    failures = page.locator("details.failure")
    summaries = [s.strip() for s in page.locator("details.failure > summary").all_inner_texts()]
    assert summaries == [
        "flaky [item 3] — ValueError: bad item 3",
        "stuck — TaskTimeoutError: task 'stuck' timed out after 0.3 s (attempt 1 of 1)",
    ]
    flaky = failures.nth(0)
    flaky.locator("summary").click()
    assert flaky.locator("table.args tbody tr").all_inner_texts() == ["x\t3", "api_key\t***"]
    assert flaky.locator("ol.retries li").all_inner_texts() == [
        "attempt 1: ValueError: bad item 3 (retried after 0 µs)"
    ]
    assert 'raise ValueError(f"bad item {x}")' in flaky.locator("pre").inner_text()
    assert "hunter2-secret" not in page.content()


def test_tasks_maps_and_datasets(run, open_report):
    backend, html = run
    page = open_report(html).page
    row = page.locator("tr[data-task='cached'] td").all_inner_texts()
    assert row[:6] == ["cached", "3", "2", "1", "0", "0"] and row[11] == "33.3 %"
    assert page.locator("tr[data-task='wobbly'] td").nth(5).inner_text() == "2"  # retries
    maps = page.locator(".map h3").all_inner_texts()
    assert maps[:3] == [f"work · {backend}", f"flaky · {backend}", f"wobbly · {backend}"]
    assert page.locator(".map svg").count() == len(maps)
    batches = page.locator(".map .batches").first.inner_text()
    if backend == "inline":
        assert batches.endswith("none (items ran one by one)")
    else:
        sizes = re.findall(r"(\d+) × (\d+)", batches)
        assert sum(int(n) * int(size) for n, size in sizes) == 6
    row = page.locator("tr[data-dataset='summary.json'] td").all_inner_texts()
    assert row[:4] == ["saved", "summary.json", str(Path(html.parent / "datasets")), "json"]


def test_log_records_filter_by_level(run, open_report):
    _, html = run
    page = open_report(html).page
    rows = page.locator("#logs tbody tr")
    assert rows.count() == 9  # 5 info, 2 error (item 3, two attempts), 2 warning
    page.uncheck("#log-filters input[data-level='info']")
    page.uncheck("#log-filters input[data-level='warning']")
    visible = page.locator("#logs tbody tr:not([hidden])")
    assert visible.count() == 2
    assert all("item failed" in t for t in visible.all_inner_texts())
    page.check("#log-filters input[data-level='info']")
    page.fill("#log-search", "x=4")
    assert page.locator("#logs tbody tr:not([hidden])").all_inner_texts()[0].split("\t")[3] == (
        "item done"
    )


# -- large runs, cut logs, several sessions ----------------------------------------------


@task
def tiny(x: int) -> int:
    if x % 5_000 == 0:
        raise ValueError(f"item {x}")
    return x


@pytest.fixture(scope="module")
def large_log(tmp_path_factory):
    """The event log of a real 50,000-item map: over 100,000 events."""
    tmp = tmp_path_factory.mktemp("large")
    log = tmp / "run.jsonl"
    with session(backend="thread", settings=DagliteSettings(processors=(), event_log=str(log))):
        map_tasks(tiny, range(50_000), return_exceptions=True)
    with log.open() as file:
        assert sum(1 for _ in file) > 100_000
    return log


def test_a_run_of_100k_events_stays_usable(large_log, open_report, tmp_path):
    html = build_report(large_log, tmp_path / "large.html")
    opened = open_report(html)
    page = opened.page
    assert opened.errors == [] and opened.requests == []
    assert text(page, "[data-count='calls'] b") == "50,000"
    assert text(page, "[data-count='failed'] b") == "10"
    assert page.locator("#gantt").get_attribute("data-bars") == "20000"
    notes = page.locator("#notes .note").all_inner_texts()
    assert any("The timeline draws 20,000 of 50,000 task calls" in n for n in notes)
    page.click("#zoom-in")  # the page still answers
    page.mouse.move(400, 400)
    assert page.locator("details.failure").count() == 10


def test_a_cut_log_gives_a_report_with_a_visible_note(large_log, open_report, tmp_path):
    cut = tmp_path / "cut.jsonl"
    data = large_log.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # killed halfway through
    opened = open_report(build_report(cut, tmp_path / "cut.html"))
    page = opened.page
    assert opened.errors == []
    notes = page.locator("#notes .note").all_inner_texts()
    assert any("The log ends in a cut line" in n for n in notes)
    assert any("The session has no end in the log" in n for n in notes)
    assert text(page, "#status") == "incomplete"


def test_a_log_of_several_sessions_can_switch_between_them(open_report, tmp_path):
    log = tmp_path / "two.jsonl"
    settings = DagliteSettings(processors=(), event_log=str(log))
    with session(settings=settings):
        map_tasks(tiny, range(1, 4))
    with session(settings=settings, backend="thread"):
        map_tasks(tiny, range(1, 8))
    opened = open_report(build_report(log, tmp_path / "two.html"))
    page = opened.page
    assert page.locator("#session-pick").is_visible()
    assert text(page, "[data-count='calls'] b") == "7"  # the last session first
    page.select_option("#session-select", "0")
    assert text(page, "[data-count='calls'] b") == "3"
    assert opened.errors == []


def test_a_session_without_task_calls(open_report, tmp_path):
    log = tmp_path / "empty.jsonl"
    with session(settings=DagliteSettings(processors=(), event_log=str(log))):
        pass
    opened = open_report(build_report(log, tmp_path / "empty.html"))
    page = opened.page
    assert opened.errors == [] and opened.requests == []
    assert text(page, "[data-count='calls'] b") == "0"
    assert text(page, "#tasks caption") == "No task calls."
    assert text(page, "#failures") == "No failures."
    assert page.locator(".lane").count() == 0
