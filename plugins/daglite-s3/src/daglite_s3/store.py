"""The `s3` store: a daglite `ByteStore` over s3fs.

Options, highest precedence first:

1. store options: `CacheStore("s3://b/p", endpoint_url=...)`, `DatasetStore(..., anon=True)`;
2. `DAGLITE_S3_ENDPOINT_URL`, `DAGLITE_S3_REGION`, `DAGLITE_S3_PROFILE`, `DAGLITE_S3_ANON`;
3. `[tool.daglite.options.s3]` in `pyproject.toml` (`settings.options["s3"]`);
4. the ordinary AWS configuration, read by botocore itself: `AWS_ACCESS_KEY_ID` /
   `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_PROFILE`, `AWS_REGION`,
   `AWS_ENDPOINT_URL`, `~/.aws/config` and `~/.aws/credentials`, instance roles.

Friendly option names: `endpoint_url`, `region`, `profile`, `anon`, `connect_timeout`,
`read_timeout`, `max_attempts`. Credentials in the URL (`s3://KEY:SECRET@bucket/prefix`)
are taken out of it by daglite before the store is built and used as `key` / `secret`
(explicit `key=` / `secret=` options win); anything else (`key`, `secret`, `token`,
`client_kwargs`, `config_kwargs`, ...) goes to `s3fs.S3FileSystem` as is. Secrets never
appear in a repr, a log line, an event or an error message.
"""

from __future__ import annotations

import os
from typing import Any
from typing import ClassVar

from daglite.plugin import ByteStore
from daglite.plugin import DagliteSettings
from daglite.plugin import current_settings

_ENV = {
    "endpoint_url": "DAGLITE_S3_ENDPOINT_URL",
    "region": "DAGLITE_S3_REGION",
    "profile": "DAGLITE_S3_PROFILE",
    "anon": "DAGLITE_S3_ANON",
}

_CREDENTIAL_ERRORS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "Forbidden",
    "ExpiredToken",
    "InvalidToken",
    "NoCredentialsError",
    "PartialCredentialsError",
    "Unable to locate credentials",
)


def _settings_options(settings: DagliteSettings) -> dict[str, Any]:
    found = settings.options.get("s3", {})
    return dict(found) if isinstance(found, dict) else {}


def _env_options(environ: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, variable in _ENV.items():
        value = environ.get(variable)
        if value:
            found[name] = value.strip().lower() in ("1", "true", "yes") if name == "anon" else value
    return found


def resolve_options(
    options: dict[str, Any], environ: Any = None, settings: DagliteSettings | None = None
) -> dict[str, Any]:
    """The options of an `s3://` store: settings < `DAGLITE_S3_*` < explicit `options`.

    `settings` are the session's (the caller's current settings when `None`).
    """
    merged = _settings_options(settings if settings is not None else current_settings())
    merged.update(_env_options(os.environ if environ is None else environ))
    merged.update(options)
    return merged


def filesystem_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """`s3fs.S3FileSystem` keyword arguments from friendly daglite options."""
    kwargs = dict(options)
    # Credentials written into the URL (`s3://KEY:SECRET@bucket/...`) arrive under the
    # fsspec names; the store's own key/secret options win over them.
    for url_name, s3_name in (("username", "key"), ("password", "secret")):
        if url_name in kwargs:
            value = kwargs.pop(url_name)
            kwargs.setdefault(s3_name, value)
    client = dict(kwargs.pop("client_kwargs", None) or {})
    config = dict(kwargs.pop("config_kwargs", None) or {})
    if "region" in kwargs:
        client["region_name"] = kwargs.pop("region")
    if "connect_timeout" in kwargs:
        config["connect_timeout"] = kwargs.pop("connect_timeout")
    if "read_timeout" in kwargs:
        config["read_timeout"] = kwargs.pop("read_timeout")
    if "max_attempts" in kwargs:
        config["retries"] = {"max_attempts": int(kwargs.pop("max_attempts")), "mode": "standard"}
    if client:
        kwargs["client_kwargs"] = client
    if config:
        kwargs["config_kwargs"] = config
    return kwargs


class S3Store(ByteStore):
    """Keys under `s3://bucket/prefix`. `is_local` is false: every worker writes directly.

    A write is one PUT, which S3 applies atomically: a reader sees the old object or the
    new one, never part of one. A read is one GET for the same reason (s3fs would otherwise
    fetch large objects as concurrent ranges, after an extra HEAD request).
    """

    cat_options: ClassVar[dict[str, Any]] = {"max_concurrency": 1}

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.root.split("/", 1)[0]

    def explain(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__} {exc} {exc.__cause__!r}"
        if "NoSuchBucket" in text or "bucket does not exist" in text:
            return f"the bucket '{self.bucket}' does not exist: create it, or fix the URL"
        if any(marker in text for marker in _CREDENTIAL_ERRORS) or isinstance(exc, PermissionError):
            return (
                "access was denied: check the AWS credentials (AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the store's key/secret options) "
                f"and their permissions on bucket '{self.bucket}'"
            )
        if (
            "EndpointConnectionError" in text
            or "ConnectTimeout" in text
            or isinstance(exc, (ConnectionError, TimeoutError))
        ):
            endpoint = self._endpoint()
            return (
                f"cannot reach the S3 endpoint {endpoint}: check endpoint_url "
                "(DAGLITE_S3_ENDPOINT_URL / AWS_ENDPOINT_URL), the network and the region"
            )
        return ""

    def _endpoint(self) -> str:
        fs = self.fs
        endpoint = getattr(fs, "endpoint_url", None) or (fs.client_kwargs or {}).get("endpoint_url")
        return endpoint or "(the AWS default)"


def s3_store(url: str, options: dict[str, Any], settings: DagliteSettings) -> ByteStore:
    """Factory of the `s3` (and `s3a`) scheme, registered in `daglite.stores`.

    Args:
        url: `s3://bucket/prefix` (`s3a://` is accepted as a synonym).
        options: Store options (see the module docstring).
        settings: The settings of the session opening the store (`options["s3"]` there).
    """
    import s3fs  # pyright: ignore[reportMissingImports]

    resolved = resolve_options(options, settings=settings)
    fs = s3fs.S3FileSystem(**filesystem_kwargs(resolved))
    if url.startswith("s3a://"):
        url = "s3://" + url[len("s3a://") :]
    return S3Store(fs, url, is_local=False, options=resolved)
