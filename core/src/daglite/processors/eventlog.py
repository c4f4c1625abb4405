"""The `jsonl` processor: every event of a session, one JSON object a line, in a file.

The file is opened in append mode on the first event, so several sessions (or runs) can
share one log; every line carries its session id. Lines are buffered and flushed when the
session ends (`SessionEnded`) and when the processor is closed, so the file is complete
before the session returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

from daglite.errors import PluginError

if TYPE_CHECKING:
    from daglite.events import Event
    from daglite.settings import DagliteSettings


def _encoder() -> Any:
    """`json.dumps(obj, default=repr, ensure_ascii=False)`, without its per-call set-up.

    `json.dumps` builds an encoder for every call, which costs more than encoding a small
    event; the C encoder is built once here (the pure-Python one where it is missing).
    """
    encoder = json.JSONEncoder(default=repr, ensure_ascii=False, check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    try:
        iterencode = make(
            None, repr, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
        )
    except TypeError:  # pragma: no cover - another signature: use the public way
        return encoder.encode

    def encode(obj: Any) -> str:
        return "".join(iterencode(obj, 0))

    return encode


_encode = _encoder()


class JsonlProcessor:
    """Appends each event's `to_dict()` as one JSON line to `path`.

    Values JSON cannot hold are written as their `repr`.

    Args:
        path: The file to append to (parent folders are created).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    @classmethod
    def from_settings(cls, settings: DagliteSettings) -> JsonlProcessor:
        """The processor writing to the `event_log` setting.

        Raises:
            PluginError: `event_log` is not set.
        """
        if not settings.event_log:
            raise PluginError(
                "the 'jsonl' processor needs a file to write to: set the event_log setting "
                "(DAGLITE_EVENT_LOG=path, event_log = 'path' in [tool.daglite], or "
                "daglite run --event-log path)"
            )
        processor = cls(settings.event_log)
        processor._open()  # an unwritable path fails now, when the session opens
        return processor

    def __repr__(self) -> str:
        return f"JsonlProcessor({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def _open(self) -> IO[str]:
        """The log file, opened for appending (parent folders are made).

        Raises:
            PluginError: The file cannot be created or written (the message says which path
                and what to do).
        """
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as exc:
                raise PluginError(
                    f"cannot write the event log '{self.path}': {type(exc).__name__}: "
                    f"{exc.strerror or exc}; choose a writable path (daglite run --event-log "
                    "PATH, DAGLITE_EVENT_LOG or event_log in [tool.daglite])"
                ) from None
        return self._file

    def __call__(self, event: Event) -> None:
        """Append `event` as one line (flushed when it ends its session)."""
        file = self._open()
        file.write(_encode(event.to_dict()) + "\n")
        if type(event).__name__ == "SessionEnded":
            file.flush()

    def close(self) -> None:
        """Flush and close the file (the session calls this when it ends)."""
        file, self._file = self._file, None
        if file is not None:
            file.close()
