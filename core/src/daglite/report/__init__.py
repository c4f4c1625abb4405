"""`daglite report`: one self-contained HTML page picturing a run, built from its event log.

`build_report(log, out)` streams the JSON-lines event log (`reader`), gathers what the
page shows per session (`model`, `layout`) and writes the page with its data, style and
script inlined (`render`): it opens offline in any browser.
"""

from __future__ import annotations

from daglite.report.reader import NotAnEventLog
from daglite.report.reader import ReportError
from daglite.report.render import build_report

__all__ = ["NotAnEventLog", "ReportError", "build_report"]
