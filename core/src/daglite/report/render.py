"""Writing the report page: the template with its style, script and data inlined."""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from daglite.report.model import RunModel
from daglite.report.reader import EventLogReader
from daglite.report.reader import ReportError

#: Most task calls drawn on a session's timeline (the others are sampled; the page says so).
MAX_BARS = 20_000


def build_report(
    log: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    session_id: str | None = None,
    max_bars: int = MAX_BARS,
    source: str | None = None,
) -> Path:
    """Build the HTML report of the event log `log` into `out`.

    The log is read one line at a time. The same log always gives the same page.

    Args:
        log: A JSON-lines event log (the `jsonl` processor's output).
        out: The HTML file to write (replaced atomically).
        session_id: Report only this session (default: every session in the log; the
            page opens on the last one).
        max_bars: Most task calls drawn per timeline.
        source: What the page names as its source (default: the log's file name).

    Returns:
        The path written.

    Raises:
        NotAnEventLog: `log` cannot be read, is empty or holds no event.
        ReportError: `session_id` is not a session of the log, or `out` cannot be written.
    """
    reader = EventLogReader(log)
    model = RunModel(session_id)
    for event in reader:
        model.add(event)
    from daglite import __version__

    data = {
        "version": __version__,
        "source": source or Path(log).name,
        "notes": reader.notes(),
        "sessions": [s.summary(max_bars) for s in model.sessions.values()],
    }
    if not data["sessions"]:
        raise ReportError(
            f"{log} has no events of session {session_id!r}; its sessions: " + ", ".join(model.seen)
        )
    return write_page(data, Path(out))


def render_page(data: dict[str, Any]) -> str:
    """The HTML page drawing `data` (everything inlined)."""
    package = resources.files("daglite.report")
    template = (package / "page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # `</script>` or `<!--` in a value would end the script element early: escape every `<`.
    payload = payload.replace("<", "\\u003c")
    sessions = data["sessions"]
    title = "daglite report"
    if sessions and sessions[-1].get("entry"):
        title = f"{sessions[-1]['entry']} · daglite report"
    parts = {
        "/*STYLE*/": (package / "page.css").read_text(encoding="utf-8"),
        "/*SCRIPT*/": (package / "page.js").read_text(encoding="utf-8"),
        "{{TITLE}}": _escape(title),
        "{{DATA}}": payload,
    }
    for marker, text in parts.items():
        before, _, after = template.partition(marker)
        template = before + text + after  # the data may contain a marker: replace once
    return template


def write_page(data: dict[str, Any], out: Path) -> Path:
    """Write the page for `data` to `out` atomically (a temporary file, then a rename).

    Raises:
        ReportError: `out` is a folder, or its folder cannot be written to.
    """
    page = render_page(data)
    if out.is_dir():
        raise ReportError(f"{out} is a folder: name an .html file to write the report to")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise ReportError(f"cannot write the report {out}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(page)
        os.chmod(tmp, 0o644)  # a page to share, not a private file (mkstemp makes it 0600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
