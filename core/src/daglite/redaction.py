"""Redaction: credentials never leave daglite in a message, repr, log line, event or CLI output.

Store URLs are where credentials ride along (`s3://KEY:SECRET@bucket/prefix`,
`sftp://user:pass@host/dir`). daglite handles them at one depth, where a URL becomes a
store (`daglite.stores.open_store`):

- `split_credentials` takes the `user:password@` part out of the URL. The store is built
  from the clean URL, with the credentials as its `username` / `password` options (the
  fsspec names; the `s3` store maps them to its key and secret). So the URL every layer
  holds, shows, logs and puts in events has no credential in it, and the filesystem
  library never sees one in a path that it could echo back in an error.
- a URL with a secret-looking query parameter (`?token=...`, `?X-Amz-Signature=...`) is
  refused with a message that does not repeat the value: no daglite store reads
  credentials from a query string, so it is a pasted presigned URL or a mistake.
- `redact` hides the values of secret-looking store options in a text (the one builder of
  store errors runs every library message through it); `redact_url` hides credentials in
  URLs that were not opened yet (settings, error messages about a URL that failed).

Events carry two summaries built here: the command line a session was started with
(`redacted_command`) and the arguments of a failed call (`summarize_arguments`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

#: Words that make an option or query parameter name look secret.
SECRET_WORDS = (
    "secret",
    "token",
    "password",
    "passwd",
    "key",
    "credential",
    "auth",
    "username",
    "signature",
    "sig",
)

MASK = "***"

_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)([^/\s?#@'\"]*)@")
_QUERY = re.compile(r"([?&;])([^=&;#\s'\"]+)=([^&;#\s'\"]*)")


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact_url(text: str) -> str:
    """`text` with every URL's `user:password@` part and secret-looking query values masked.

    Examples:
        >>> redact_url("cannot open 's3://AKIA:abc@bucket/p?token=xyz&v=1'")
        "cannot open 's3://***@bucket/p?token=***&v=1'"
    """
    if "://" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _QUERY.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if _looks_secret(m.group(2)) else m.group(0),
        text,
    )


def secret_query_names(url: str) -> list[str]:
    """The names of the secret-looking query parameters of `url` (`[]` when there are none)."""
    if "://" not in url or "?" not in url:
        return []
    return [m.group(2) for m in _QUERY.finditer(url) if _looks_secret(m.group(2))]


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its `user:password@` part, and the credentials that part held.

    Returns:
        The clean URL and `{"username": ..., "password": ...}` (only the parts present;
        percent-escapes decoded), or `(url, {})` when the URL carries none.

    Examples:
        >>> split_credentials("s3://AKIA:abc@bucket/prefix")
        ('s3://bucket/prefix', {'username': 'AKIA', 'password': 'abc'})
    """
    head, sep, rest = url.partition("://")
    if not sep:
        return url, {}
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in netloc:
        return url, {}
    from urllib.parse import unquote

    userinfo, _, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    found = {"username": unquote(user)} if user else {}
    if colon:
        found["password"] = unquote(password)
    return f"{head}://{host}{rest[len(netloc) :]}", found


def redact(text: str, options: dict[str, Any]) -> str:
    """`text` with the values of secret-looking options (keys, tokens, ...) replaced by ***.

    Nested option tables (`client_kwargs`, ...) are searched too. URLs in `text` are
    passed through `redact_url` as well.
    """

    def secrets(mapping: Any) -> list[str]:
        found = []
        for name, value in mapping.items():
            if isinstance(value, dict):
                found += secrets(value)
            elif isinstance(value, str) and len(value) >= 4 and _looks_secret(str(name)):
                found.append(value)
        return found

    for secret in sorted(secrets(options), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact_url(text)


def safe_repr(value: Any) -> str:
    """`repr(value)`, with credentials in a URL string masked (for attrs `repr=`)."""
    return repr(redact_url(value)) if isinstance(value, str) else repr(value)


_SECRET_ARGUMENT = re.compile(r"secret|token|passw|key|credential|auth", re.I)
_OPTION = re.compile(r"-*[\w.-]+")


def redacted_command() -> list[str]:
    """`sys.argv` with secret-looking values and URL credentials replaced by `***`.

    A value is secret-looking when it follows an option whose name looks secret
    (`--api-key VALUE`, `--token=VALUE`) or a name that does (`s3.secret=VALUE`,
    `AWS_SECRET_ACCESS_KEY=VALUE`).
    """
    command: list[str] = []
    hide_next = False
    for arg in sys.argv:
        name, eq, _ = arg.partition("=")
        secret = bool(_OPTION.fullmatch(name) and _SECRET_ARGUMENT.search(name))
        if hide_next:
            arg, hide_next = "***", False
        elif secret and eq:
            arg = f"{name}=***"
        elif secret and name.startswith("-"):
            hide_next = True
        command.append(redact_url(arg))
    return command


def summarize_arguments(inputs: dict[str, Any], width: int = 80) -> dict[str, str]:
    """A short `repr` of each argument, for failure events (never a secret).

    Arguments whose name looks secret (key, token, password, ...) show as `***`, URL
    credentials and secret query values are masked (`redact_url`), and each
    repr is cut to `width` characters.
    """
    summary = {}
    for name, value in inputs.items():
        if _SECRET_ARGUMENT.search(name):
            summary[name] = "***"
            continue
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not hide the failure
            text = f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
        text = redact_url(text)
        summary[name] = text if len(text) <= width else text[: width - 1] + "…"
    return summary
