"""`session(report=...)`: record the session's events, then write its report when it ends."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from daglite.errors import SettingsError
from daglite.processors.eventlog import JsonlProcessor


class ReportRecorder:
    """Where a session's events go for its report, and the report written from them.

    The events are read back from the session's event log when it has one (the
    `event_log` setting); otherwise they are recorded to a temporary JSON-lines file,
    removed once the report is written.

    Args:
        out: The HTML report to write.
        event_log: The session's event log, if it writes one.

    Attributes:
        processor: The processor recording to the temporary file (`None` when the
            session's own event log is used).

    Raises:
        SettingsError: `out` is a folder, or its folder cannot be created.
    """

    def __init__(self, out: str | os.PathLike[str], event_log: str | None) -> None:
        self.out = Path(out)
        if self.out.is_dir():
            raise SettingsError(f"report {str(self.out)!r} is a folder: name an .html file")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(
                f"cannot write the report {str(self.out)!r}: {exc.strerror or exc}"
            ) from exc
        self.processor: JsonlProcessor | None = None
        if event_log:
            self.log = Path(event_log)
        else:
            fd, name = tempfile.mkstemp(prefix="daglite-events-", suffix=".jsonl")
            os.close(fd)
            self.log = Path(name)
            self.processor = JsonlProcessor(self.log)

    def write(self, session_id: str) -> Path | None:
        """Write the report of session `session_id` (called once its events are flushed).

        A report that cannot be written is logged on the `daglite` logger, never raised:
        the run it pictures has already ended.
        """
        from daglite.report.render import build_report

        try:
            source = None if self.processor is None else "the events of the session"
            return build_report(self.log, self.out, session_id=session_id, source=source)
        except Exception as exc:
            logging.getLogger("daglite").error(
                "could not write the report %s: %s: %s", self.out, type(exc).__name__, exc
            )
            return None
        finally:
            if self.processor is not None:
                self.log.unlink(missing_ok=True)
