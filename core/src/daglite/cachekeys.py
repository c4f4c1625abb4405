"""Cache keys: a canonical encoding of values (arguments, and the state of callables).

The encoding is stable across processes and interpreter runs (no `hash()`, no `id()`, no
set or dict iteration order), so a key computed today matches the one computed tomorrow.

It covers the built-in value types directly (dicts and sets sorted by their encoded
items); an object whose class defines `__cache_key__(self)` by what that returns; values of
a type whose cache format (`daglite.formats.cache_format`) has a `fingerprint()` by that
digest of their content (e.g. tables, with `daglite-arrow`); other objects from their
`__reduce_ex__` state (what pickle would save, with the same sorting); functions by name,
code fingerprint and current state (`daglite.cacheidentity`); cloudpickle is the last
resort.
"""

from __future__ import annotations

import copyreg
import types
from collections.abc import Callable
from typing import Any

_MAX_DEPTH = 200


class Unhashable(TypeError):
    """A value has no stable encoding (the caller names the argument)."""


def _enc_str(value: str, out: list[bytes]) -> None:
    data = value.encode("utf-8", "surrogatepass")
    out.append(b"s%d:" % len(data))
    out.append(data)


def _enc_bytes(value: Any, out: list[bytes]) -> None:
    data = bytes(value)
    out.append(b"b%d:" % len(data))
    out.append(data)


def _sorted_items(items: Any, depth: int) -> list[bytes]:
    encoded = []
    for item in items:
        part: list[bytes] = []
        encode_into(item, part, depth)
        encoded.append(b"".join(part))
    encoded.sort()
    return encoded


def encode_into(obj: Any, out: list[bytes], depth: int = 0) -> None:
    """Append the canonical encoding of `obj` to `out`.

    Raises:
        Unhashable: `obj` (or something inside it) has no stable encoding.
    """
    if depth > _MAX_DEPTH:
        raise Unhashable("it is nested too deeply (or contains itself)")
    t = type(obj)
    if t is str:
        _enc_str(obj, out)
    elif t is int:
        out.append(b"i%d;" % obj)
    elif obj is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if obj else b"F")
    elif t is float:
        out.append(b"f" + repr(obj).encode() + b";")
    elif t is tuple or t is list:
        out.append(b"(" if t is tuple else b"[")
        for item in obj:
            encode_into(item, out, depth + 1)
        out.append(b")")
    elif t is dict:
        out.append(b"{")
        pairs = []
        for k, v in obj.items():
            kp: list[bytes] = []
            encode_into(k, kp, depth + 1)
            vp: list[bytes] = []
            encode_into(v, vp, depth + 1)
            pairs.append((b"".join(kp), b"".join(vp)))
        pairs.sort()
        for k, v in pairs:
            out.append(k)
            out.append(v)
        out.append(b"}")
    elif t is set or t is frozenset:
        out.append(b"<" if t is set else b"|")
        out.extend(_sorted_items(obj, depth + 1))
        out.append(b">")
    elif t is bytes or t is bytearray:
        _enc_bytes(obj, out)
    else:
        _encode_other(obj, out, depth)


_BUILTIN_BASES: tuple[Any, ...] = (str, int, float, bytes, tuple, list, dict, frozenset, set)


def _qualname(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{getattr(obj, '__module__', None)}.{name or type(obj).__qualname__}"


def _encode_other(obj: Any, out: list[bytes], depth: int) -> None:
    if isinstance(obj, type):
        out.append(b"c")
        _enc_str(_qualname(obj), out)
        return
    if isinstance(obj, types.FunctionType):
        from daglite.cacheidentity import encode_function

        encode_function(obj, out, depth)
        return
    if isinstance(obj, (types.BuiltinFunctionType, types.ModuleType)):
        out.append(b"B")
        _enc_str(f"{getattr(obj, '__module__', None) or ''}.{obj.__name__}", out)
        return
    if isinstance(obj, types.MethodType):
        out.append(b"M")
        encode_into(obj.__self__, out, depth + 1)
        encode_into(obj.__func__, out, depth + 1)
        return
    own_key = getattr(type(obj), "__cache_key__", None)
    if own_key is not None:  # the object says what identifies it
        out.append(b"H")
        _enc_str(_qualname(type(obj)), out)
        encode_into(own_key(obj), out, depth + 1)
        return
    # Subclasses of the built-in containers (namedtuples, OrderedDict, str enums, ...).
    for base in _BUILTIN_BASES:
        if isinstance(obj, base) and not hasattr(obj, "__dict__"):
            out.append(b"S")
            _enc_str(_qualname(type(obj)), out)
            encode_into(base(obj), out, depth + 1)
            return
    fingerprint = _fingerprints.get(type(obj), _UNKNOWN)
    if fingerprint is _UNKNOWN:
        fingerprint = _fingerprint_of(type(obj))
    if fingerprint is not None:
        try:
            digest = fingerprint(obj)
        except Exception:  # a value the format cannot hold: encoded like any other object
            digest = None
        if digest is not None:
            out.append(b"X")
            _enc_str(_qualname(type(obj)), out)
            _enc_bytes(digest, out)
            return
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as exc:
        _last_resort(obj, out, exc)
        return
    if isinstance(reduced, str):  # a global, pickled by name
        out.append(b"G")
        _enc_str(f"{getattr(obj, '__module__', '')}.{reduced}", out)
        return
    if reduced[0] is _NEWOBJ and reduced[1] == (type(obj),) and not any(reduced[3:]):
        out.append(b"O")  # a plain instance: its class and its state
        _enc_str(_qualname(type(obj)), out)
        try:
            encode_into(reduced[2], out, depth + 1)
        except Unhashable as exc:
            _last_resort(obj, out, exc)
        return
    out.append(b"R")
    _enc_str(_qualname(type(obj)), out)
    parts = list(reduced)
    for index in (3, 4):  # list items / dict items come as iterators
        if len(parts) > index and parts[index] is not None:
            parts[index] = list(parts[index])
    try:
        encode_into(tuple(parts), out, depth + 1)
    except Unhashable as exc:
        _last_resort(obj, out, exc)


_NEWOBJ = copyreg.__newobj__  # pyright: ignore[reportAttributeAccessIssue]
_UNKNOWN: Any = object()
_fingerprints: dict[type, Callable[[Any], bytes] | None] = {}


def _fingerprint_of(cls: type) -> Callable[[Any], bytes] | None:
    from daglite.formats import cache_format  # formats load plugins: only when needed

    fmt = cache_format(cls)
    found = getattr(fmt, "fingerprint", None) if fmt is not None else None
    _fingerprints[cls] = found
    return found


def _last_resort(obj: Any, out: list[bytes], cause: BaseException) -> None:
    import cloudpickle

    try:
        data = cloudpickle.dumps(obj, protocol=5)
    except Exception as exc:
        raise Unhashable(
            f"{type(obj).__module__}.{type(obj).__qualname__} cannot be encoded or pickled "
            f"({type(exc).__name__}: {exc})"
        ) from cause
    out.append(b"P")
    _enc_bytes(data, out)


def encode(obj: Any) -> bytes:
    """The canonical bytes of `obj` (equal values give equal bytes, in every process).

    Raises:
        Unhashable: `obj` has no stable encoding.
    """
    out: list[bytes] = []
    encode_into(obj, out)
    return b"".join(out)


def encodable(value: Any) -> bool:
    """Whether `value` can be part of a cache key (`encode` takes it)."""
    try:
        encode(value)
    except (Unhashable, RecursionError):
        return False
    return True


def code_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of `func`'s code (see `daglite.cacheidentity.code_fingerprint`)."""
    from daglite.cacheidentity import code_fingerprint as fingerprint

    return fingerprint(func)
