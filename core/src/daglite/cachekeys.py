"""Cache keys: a canonical encoding of arguments and a fingerprint of a function's code.

Both are stable across processes and interpreter runs (no `hash()`, no `id()`, no set or
dict iteration order), so a key computed today matches the one computed tomorrow.

The argument encoding covers the built-in value types directly (dicts and sets sorted by
their encoded items); values of a type whose cache format (`daglite.formats.cache_format`)
has a `fingerprint()` by that digest of their content (e.g. tables, with `daglite-arrow`);
other objects from their `__reduce_ex__` state (what pickle would save, with the same
sorting), functions by name and code fingerprint, and cloudpickle is the last resort. The
code fingerprint covers the bytecode, constants and names of the function, its nested
functions, the module-level scalar constants it reads (`THRESHOLD = 5`), and every function
of the same top-level package it references by global name (recursively) - but not line
numbers, comments or the docstring, so reformatting or documenting a function keeps its
cache. Classes and objects it reads are not followed.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Callable
from typing import Any

_MAX_DEPTH = 200

# A code object's docstring slot: co_consts[0] on 3.10-3.13; flagged from 3.14 on.
_HAS_DOCSTRING_FLAG = 0x4000000 if sys.version_info >= (3, 14) else 0


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
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', obj.__name__)}"


def _encode_other(obj: Any, out: list[bytes], depth: int) -> None:
    if isinstance(obj, type):
        out.append(b"c")
        _enc_str(_qualname(obj), out)
        return
    func = getattr(obj, "__wrapped__", None) if hasattr(obj, "cache_hash_fn") else None
    if isinstance(func, types.FunctionType):  # a daglite task: its function
        obj = func
    if isinstance(obj, types.FunctionType):
        out.append(b"F")
        _enc_str(_qualname(obj), out)
        _enc_str(code_fingerprint(obj), out)
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


# -- code fingerprints ----------------------------------------------------------------------


_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


def _code_parts(code: types.CodeType, out: list[bytes], names: set[str]) -> None:
    consts = code.co_consts
    # CO_NEWLOCALS marks function bodies (not class bodies); comprehensions have no doc slot.
    is_function = bool(code.co_flags & 0x2) and code.co_name not in _COMPREHENSIONS
    if consts and is_function:
        if _HAS_DOCSTRING_FLAG:
            if code.co_flags & _HAS_DOCSTRING_FLAG:
                consts = consts[1:]
        elif consts[0] is None or isinstance(consts[0], str):
            consts = consts[1:]  # the docstring slot (None when there is no docstring)
    _enc_str(code.co_name, out)
    out.append(b"a%d,%d,%d;" % (code.co_argcount, code.co_kwonlyargcount, code.co_flags))
    _enc_bytes(code.co_code, out)
    out.append(b"[")
    for const in consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, out, names)
        else:
            encode_into(const, out)
    out.append(b"]")
    encode_into(code.co_names, out)
    encode_into(code.co_varnames, out)
    encode_into(code.co_freevars, out)
    names.update(code.co_names)


_CONSTANTS = frozenset({int, float, complex, str, bytes, bool, type(None)})


def _fingerprint_into(func: types.FunctionType, out: list[bytes], seen: set[int]) -> None:
    seen.add(id(func))
    names: set[str] = set()
    _code_parts(func.__code__, out, names)
    package = (func.__module__ or "").partition(".")[0]
    env = func.__globals__
    helpers: list[tuple[str, types.FunctionType]] = []
    for name in sorted(names):
        if name not in env:
            continue
        value = env[name]
        if type(value) in _CONSTANTS:  # a module-level constant the code reads
            out.append(b"K")
            _enc_str(name, out)
            encode_into(value, out)
            continue
        inner = getattr(value, "__wrapped__", None)
        if isinstance(inner, types.FunctionType) and hasattr(value, "cache_hash_fn"):
            value = inner  # another daglite task: its function
        if (
            isinstance(value, types.FunctionType)
            and id(value) not in seen
            and (value.__module__ or "").partition(".")[0] == package
        ):
            helpers.append((name, value))
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, types.FunctionType) and id(value) not in seen:
            helpers.append(("<closure>", value))
    for name, helper in helpers:
        if id(helper) in seen:
            continue
        _enc_str(name, out)
        _fingerprint_into(helper, out, seen)


def code_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of `func`'s code and of the same-package helpers it calls.

    Unchanged by comments, docstrings, blank lines and moving the function in its file.
    """
    target = getattr(func, "__func__", func)
    if not isinstance(target, types.FunctionType):
        return _qualname(target)
    out: list[bytes] = []
    _fingerprint_into(target, out, set())
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()
