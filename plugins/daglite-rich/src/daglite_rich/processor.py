"""The `rich` event processor: live progress bars per map, a status line, coloured log lines.

It is driven by the event stream only, so it shows the same thing whatever backend runs
the items (inline, threads, worker processes, a cluster): the coordinator's dispatcher
hands it the events it asks for, one at a time, from whichever thread relays it. It asks
for no per-call event of map items (`Interest(map_items=False)`): a map's bar follows the
map's counts (`MapProgress`, a few times a second, and `MapEnded`), so an item costs no
event; only the failures, retries and timeouts of items come one by one, for their lines.

On a terminal it keeps one `rich.live.Live` region at the bottom of the screen: a status
row for the session and for each running workflow, and one bar per running map. Log lines
(failures, retries, timeouts, cache hits, finished maps and workflows, and the records
tasks log with `daglite.get_logger()`) are printed above that region, and so are the
prints of tasks (stdout/stderr are redirected while the session runs, when they show on
the same screen). The region is transient: when the session ends
it is erased and only the one-line summary is added. The live display starts one refresh
period (`1 / refresh_per_second`) after the session: a shorter session prints the same
lines and summary and never draws (nor erases) the region, which costs about as much as
ten thousand trivial map items. When the output is not a terminal
there is no live region: the same log lines are printed plainly, with a progress line per
map at most every `plain_interval` seconds.

This module holds the configuration, the session's lifecycle and the live region; what
each event does to them is in `daglite_rich.handlers`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from rich.console import Console
from rich.console import Group
from rich.console import RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress
from rich.progress import TaskID
from rich.text import Text

from daglite.errors import SettingsError
from daglite.plugin import Interest
from daglite_rich import display
from daglite_rich import lines
from daglite_rich.display import Glyphs
from daglite_rich.display import Stats
from daglite_rich.handlers import HANDLERS
from daglite_rich.handlers import RunningMap

if TYPE_CHECKING:
    from daglite import events as ev
    from daglite.plugin import DagliteSettings

_STREAMS = ("stderr", "stdout")


class RichProcessor:
    """Shows a daglite session on a rich console: bars, a status line and log lines.

    Configuration goes to `__init__`; the console and the live display are created when
    the first session starts, so a configured processor pickles (an explicitly given
    console does not travel: the copy writes to `stream`).

    Args:
        console: The rich console to draw on. `None` creates one on `stream` when the
            first session starts.
        stream: `"stderr"` (the default, like other progress bars) or `"stdout"`.
        show_tasks: Print a line for every task that finishes outside a map (tasks inside
            maps are counted by their bar instead).
        refresh_per_second: How often the live region is redrawn on a terminal (it is first
            drawn one period after the session starts).
        plain_interval: When the output is not a terminal, the least number of seconds
            between two progress lines of one map (`0` prints one per progress update).
        redirect: Move prints of tasks above the live region. `None` does it for each of
            stdout and stderr that is a terminal while the console is one too.

    Raises:
        ValueError: An argument has an unusable value (the message names it).
    """

    #: Its options (`[tool.daglite.options.rich]`, `DAGLITE_RICH_<OPTION>`, `--option rich.KEY=V`).
    known_options: ClassVar[dict[str, type]] = {
        "stream": str,
        "show_tasks": bool,
        "refresh_per_second": float,
        "plain_interval": float,
        "redirect": bool,
    }

    #: It draws its own log lines: a session with `rich` drops the default `logging` one.
    replaces = ("logging",)

    def __init__(
        self,
        *,
        console: Console | None = None,
        stream: str = "stderr",
        show_tasks: bool = True,
        refresh_per_second: float = 10.0,
        plain_interval: float = 5.0,
        redirect: bool | None = None,
    ) -> None:
        if console is not None and not isinstance(console, Console):
            raise ValueError(f"console must be a rich.console.Console, not {console!r}")
        if stream not in _STREAMS:
            raise ValueError(f"stream must be 'stderr' or 'stdout', not {stream!r}")
        if not isinstance(show_tasks, bool):
            raise ValueError(f"show_tasks must be true or false, not {show_tasks!r}")
        if not _is_number(refresh_per_second) or refresh_per_second <= 0:
            raise ValueError(
                f"refresh_per_second must be a number above 0, not {refresh_per_second!r}"
            )
        if not _is_number(plain_interval) or plain_interval < 0:
            raise ValueError(f"plain_interval must be a number >= 0, not {plain_interval!r}")
        if redirect is not None and not isinstance(redirect, bool):
            raise ValueError(f"redirect must be true, false or None, not {redirect!r}")
        self.stream = stream
        self.show_tasks = show_tasks
        self.refresh_per_second = float(refresh_per_second)
        self.plain_interval = float(plain_interval)
        self.redirect = redirect
        self._given_console = console
        self._console: Console | None = console
        self._lock = threading.RLock()  # events, and the timer that starts the live display
        self._reset()

    @classmethod
    def from_settings(cls, settings: DagliteSettings) -> RichProcessor:
        """A processor configured by `[tool.daglite.options.rich]` (or `options={"rich": ...}`).

        Raises:
            SettingsError: The options are not a table, name an unknown option, or hold an
                unusable value.
        """
        options = settings.options.get("rich", {})
        where = "the 'rich' options ([tool.daglite.options.rich])"
        if not isinstance(options, Mapping):
            raise SettingsError(f"{where} must be a table, not {options!r}")
        known = ("stream", "show_tasks", "refresh_per_second", "plain_interval", "redirect")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise SettingsError(
                f"unknown option(s) {unknown} in {where}; known options: {sorted(known)}"
            )
        try:
            return cls(**dict(options))
        except ValueError as exc:
            raise SettingsError(f"invalid value in {where}: {exc}") from exc

    # -- pickling and lifecycle -------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "show_tasks": self.show_tasks,
            "refresh_per_second": self.refresh_per_second,
            "plain_interval": self.plain_interval,
            "redirect": self.redirect,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"<RichProcessor stream={self.stream!r}>"

    def _reset(self) -> None:
        self._session_id: str | None = None
        self._live: Live | None = None
        self._timer: threading.Timer | None = None
        self._status: Progress | None = None
        self._bars: Progress | None = None
        self._view: _LiveView | None = None
        self._glyphs: Glyphs = display.UNICODE
        self._started = 0.0
        self._stats = Stats()
        self._maps: dict[str, RunningMap] = {}
        self._running: dict[str, str] = {}  # running task outside maps: task id -> name
        self._workflows: dict[str, TaskID | None] = {}

    @property
    def console(self) -> Console:
        """The console drawn on (created on first use from `stream`)."""
        if self._console is None:
            self._console = Console(stderr=self.stream == "stderr")
        return self._console

    @property
    def live(self) -> bool:
        """True while the session has a live region (status rows and bars) on a terminal.

        The region is on screen from one refresh period after the session starts.
        """
        return self._view is not None

    def display(self) -> RenderableType | None:
        """The live region's renderable (status rows, then bars), or `None` when not live.

        Rendering it on another console shows what the screen shows at this moment (once
        the region is on screen).
        """
        return self._view

    def _sync_bars(self) -> None:
        """Copy the item counts of running maps to their bars (called when drawing).

        Rich's bookkeeping (a lock, speed samples) then runs once per frame instead of
        once per progress update. Drawing happens on
        rich's refresh thread while events keep coming, so a bar removed meanwhile is
        skipped.
        """
        bars = self._bars
        if bars is None:
            return
        for entry in list(self._maps.values()):
            row = entry.row
            if row is None or entry.drawn == (entry.done, entry.failures, entry.cached):
                continue
            entry.drawn = (entry.done, entry.failures, entry.cached)
            try:
                bars.update(
                    row, completed=entry.drawn[0], failures=entry.drawn[1], cached=entry.drawn[2]
                )
            except KeyError:  # the map ended while we were drawing
                pass

    def close(self) -> None:
        """Called when the session ends: erase the live region, print the summary if due."""
        with self._lock:
            if self._session_id is not None:
                self._finish(None)

    # -- dispatch ---------------------------------------------------------------------

    @property
    def interest(self) -> Interest:
        """The events this processor draws: no other event is built for it."""
        return Interest(kinds=HANDLERS, map_items=False)

    def __call__(self, event: ev.Event) -> None:
        """Handle one event (the dispatcher never calls this from two threads at once)."""
        handler = HANDLERS.get(type(event).__name__)
        if handler is None:
            return
        with self._lock:
            if self._session_id is None:
                started = type(event).__name__ == "SessionStarted"
                backend = getattr(event, "backend", None) if started else None
                self._begin(event.session_id, backend)
            handler(self, event)

    def _begin(self, session_id: str, backend: str | None) -> None:
        console = self.console
        self._session_id = session_id
        self._glyphs = display.glyphs_for(console)
        self._started = time.monotonic()
        if not console.is_terminal or console.is_dumb_terminal:
            return  # plain lines only
        self._status = display.status_rows(console)
        self._bars = display.map_bars(console, self._glyphs)
        where = f" [dim]({escape(backend)})[/]" if backend else ""
        self._status.add_task(f"[bold]daglite session[/]{where}", stats=self._stats)
        self._view = _LiveView(self, Group(self._status, self._bars))
        # The live display starts one refresh period from now: until then lines are
        # printed plainly, and a session that ends sooner never starts it.
        timer = threading.Timer(1 / self.refresh_per_second, self._start_live, (session_id,))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _start_live(self, session_id: str) -> None:
        """Start the live display of session `session_id`, unless it ended meanwhile."""
        with self._lock:
            view = self._view
            if self._session_id != session_id or view is None or self._live is not None:
                return
            redirect_stdout, redirect_stderr = self._redirects(self.console)
            self._live = Live(
                view,
                console=self.console,
                transient=True,
                refresh_per_second=self.refresh_per_second,
                redirect_stdout=redirect_stdout,
                redirect_stderr=redirect_stderr,
            )
            self._live.start(refresh=True)

    def _redirects(self, console: Console) -> tuple[bool, bool]:
        if self.redirect is not None:
            return self.redirect, self.redirect
        # Only a stream that shows on the same screen as the console is moved above the
        # bars: a piped stdout keeps its prints.
        if not _isatty(console.file):
            return False, False
        return _isatty(sys.stdout), _isatty(sys.stderr)

    def _finish(self, ended: ev.SessionEnded | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        live, self._live = self._live, None
        if live is not None:
            if self._view is not None:  # its last frame only erases the region: draw none
                self._view.hidden = True
            live.stop()
        elapsed = ended.duration if ended is not None else time.monotonic() - self._started
        text = lines.summary(
            self._stats,
            elapsed,
            self._glyphs,
            status=ended.status if ended is not None else "success",
            error_type=ended.error_type if ended is not None else None,
            error_message=ended.error_message if ended is not None else None,
        )
        self._print(text)
        self._reset()

    def _print(self, text: Text) -> None:
        live = self._live
        if live is None:
            self.console.print(text, soft_wrap=True, highlight=False)
            return
        # A print above the live region erases the region as last drawn, then draws it
        # again. Rich's refresh thread must not draw in between (it would leave the erase
        # one region height off, wiping the line above), so the print holds the live
        # display's lock, which its refresh takes too.
        with live._lock:
            self.console.print(text, soft_wrap=True, highlight=False)


class _LiveView:
    """The live region: brings the bars up to date, then draws status rows and bars.

    Once `hidden` (the session ended) it draws an empty line: the live display's last
    frame then only erases the region.
    """

    def __init__(self, processor: RichProcessor, group: Group) -> None:
        self.processor = processor
        self.group = group
        self.hidden = False

    def __rich__(self) -> RenderableType:
        if self.hidden:
            return _NOTHING
        self.processor._sync_bars()
        return self.group


_NOTHING = Text("")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
