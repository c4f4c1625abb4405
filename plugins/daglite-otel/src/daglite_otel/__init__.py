"""daglite-otel: OpenTelemetry traces for daglite sessions, workflows, tasks and map items.

Enable it with `session(plugins=["otel"])`, the `processors` setting
(`DAGLITE_PROCESSORS=otel`), or an instance: `session(plugins=[OtelProcessor(provider)])`.
"""

from __future__ import annotations

from daglite_otel.processor import OtelProcessor

__version__ = "0.1.0"

__all__ = ["OtelProcessor", "__version__"]
