"""Which environment variables worker processes receive.

A worker gets what the session needs, not the coordinator's whole environment (which
holds whatever secrets the user's shell had; over dask it would cross the network):

- the **session's variables**, shipped in every `WorkerSpec` and applied by workers that
  outlive a session (loky's, dask's): names starting with `DAGLITE_` (settings, plugin
  addresses), `AWS_` (credentials and endpoints of `s3://` stores), `OTEL_` (the otel
  plugin's exporter), `FSSPEC_` (fsspec's own configuration of every store), plus the
  names and patterns the user lists in the `worker_env` setting (`["HF_TOKEN", "MYAPP_*"]`);
- the **system variables** a local worker process needs to run the user's Python at all
  (`PATH`, `HOME`, locale, temporary directory, `PYTHON*`, virtual/conda environment,
  library paths, TLS certificates, proxies, thread counts of numeric libraries, GPU
  selection, loky's `LOKY_*`): a worker the backend starts on this machine inherits those
  and nothing else.
  They are never shipped.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from collections.abc import Mapping

#: Prefixes of the variables every session ships to its workers.
SESSION_PREFIXES = ("DAGLITE_", "AWS_", "OTEL_", "FSSPEC_")

#: Variables a worker process started on this machine inherits (besides the session's).
SYSTEM_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ",
        "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
        "LD_LIBRARY_PATH", "LD_PRELOAD", "DYLD_LIBRARY_PATH",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES", "COVERAGE_PROCESS_START",
        "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "APPDATA",
        "LOCALAPPDATA", "USERPROFILE", "PROGRAMDATA", "NUMBER_OF_PROCESSORS",
    }
)  # fmt: skip
# Locale, the interpreter's own settings, the user's base directories (caches, config),
# loky's configuration of its workers, and pytest-cov's measurement of subprocesses.
SYSTEM_PREFIXES = ("LC_", "PYTHON", "XDG_", "LOKY_", "COV_CORE_")


def session_environ(
    environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()
) -> dict[str, str]:
    """The variables of `environ` (`os.environ`) a session ships to its workers.

    Args:
        environ: The coordinator's environment.
        extra: Names or glob patterns the user added (the `worker_env` setting).
    """
    environ = os.environ if environ is None else environ
    patterns = tuple(extra)
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(SESSION_PREFIXES)
        or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


def is_system(name: str) -> bool:
    """Whether `name` is one of the system variables a local worker inherits."""
    return name in SYSTEM_NAMES or name.startswith(SYSTEM_PREFIXES)


def local_worker_environ(
    shipped: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a worker process started on this machine.

    Args:
        shipped: The session's variables (`WorkerSpec.environ`).
        environ: The coordinator's environment (`os.environ`), for the system variables.
    """
    environ = os.environ if environ is None else environ
    base = {name: value for name, value in environ.items() if is_system(name)}
    return base | dict(shipped)


def keep_only(shipped: Mapping[str, str]) -> None:
    """Drop from this process's environment what is neither a system nor a shipped variable."""
    for name in [n for n in os.environ if not is_system(n) and n not in shipped]:
        del os.environ[name]


def describe(environ: Mapping[str, str]) -> str:
    """`environ` for a repr: the names only, never a value."""
    return f"<{len(environ)} variables: {', '.join(sorted(environ))}>"
