"""daglite-otel: OpenTelemetry traces for daglite sessions, workflows, tasks and map items.

Enable it with `session(plugins=["otel"])`, the `plugins` setting
(`DAGLITE_PLUGINS=otel`), or an instance: `session(plugins=[OtelProcessor(provider)])`.
"""

from __future__ import annotations

from daglite_otel.processor import OtelProcessor

__version__ = "0.1.0+clone"
#: The daglite plugin API this plugin was built for (`daglite.plugin.API_VERSION`).
DAGLITE_API_VERSION = 1

__all__ = ["OtelProcessor", "__version__"]
