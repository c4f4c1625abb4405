"""Helpers of the rich processor's tests: recording consoles and a terminal emulator."""

from __future__ import annotations

import io

import pyte
import pytest
from rich.console import Console

from daglite_rich import RichProcessor

WIDTH = 120


def terminal_console(width: int = WIDTH) -> Console:
    """A console that believes it draws on a terminal, writing into a string buffer."""
    return Console(
        file=io.StringIO(), record=True, force_terminal=True, width=width, color_system="standard"
    )


def snapshot(processor: RichProcessor, width: int = WIDTH) -> str:
    """What the live region shows right now, as plain text."""
    renderable = processor.display()
    assert renderable is not None, "the processor has no live region"
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=width)
    console.print(renderable)
    return console.export_text()


def screen(console: Console, width: int = 2 * WIDTH, height: int = 60) -> list[str]:
    """The non-blank lines a terminal shows after receiving everything `console` wrote.

    The emulated screen is wider than the console so that long log lines (which rich
    leaves to the terminal to wrap) stay on one line.
    """
    emulated = pyte.Screen(width, height)
    stream = pyte.Stream(emulated)
    stream.feed(console.file.getvalue().replace("\n", "\r\n"))  # type: ignore[attr-defined]
    return [line.rstrip() for line in emulated.display if line.strip()]


@pytest.fixture
def console() -> Console:
    return terminal_console()


@pytest.fixture
def every_item_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `MapProgress` after every item, instead of at most every 0.25 s.

    The bars follow a map's progress events; tests that check a bar in the middle of a
    map get the counts up to the item before without racing the timer.
    """
    from daglite import tallies

    monkeypatch.setattr(tallies, "PROGRESS_EVERY", 0.0)
