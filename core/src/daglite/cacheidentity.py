"""What identifies a callable in a cache key: the fingerprint of its code, and its state.

Two callables compute the same thing when their code is the same *and* so is what the code
reads besides its arguments. The **code fingerprint** is static (computed once): the
bytecode, constants and names of the function and of the functions nested in it, plus
every function of the same top-level package it calls by global name (recursively) - not
line numbers, comments or the docstring, so reformatting or documenting keeps the cache.

The **state** is read again at every call, since it can change between calls:

- the values of the function's closure variables (`make(2)` and `make(3)`);
- the global values it loads by name (`SCALE = 2`, a config dict), except modules, classes
  and functions (the functions of its package are in the fingerprint; others, like the
  standard library's, are not followed) and objects that cannot be encoded at all (locks,
  context variables, connections: resources, not data);
- the defaults of the helpers it calls (the task's own defaults are in its bound arguments);
- for a bound method, the object it is bound to; for a `functools.partial`, its arguments
  (and its function's state); for a callable object, the object itself.

State values are encoded like arguments (`daglite.cachekeys`): by value, objects by their
pickled state or by what their `__cache_key__()` method returns.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

from daglite import cachekeys

#: How to make a callable whose state cannot be encoded cacheable (ends the error messages).
HOW_TO_FIX = (
    "give its class a __cache_key__(self) method returning what identifies it "
    "(e.g. its parameters), or pass cache_hash=fn to key the calls yourself "
    "(fn(func, inputs) -> str receives the callable as func)"
)

# A code object's docstring slot: co_consts[0] on 3.10-3.13; flagged from 3.14 on.
_HAS_DOCSTRING_FLAG = 0x4000000 if sys.version_info >= (3, 14) else 0
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
_STATIC = (type, types.ModuleType, types.BuiltinFunctionType, types.MethodDescriptorType)


class Identity(NamedTuple):
    """A callable's code fingerprint and the `(label, getter)` pairs of its state."""

    fingerprint: str
    state: tuple[tuple[str, Callable[[], Any]], ...]


class _Absent:
    """Stands for an empty closure cell or a global not defined (yet)."""

    def __cache_key__(self) -> None:
        return None


ABSENT = _Absent()


def _code_parts(code: types.CodeType, out: list[bytes], loads: set[str]) -> None:
    consts = code.co_consts
    # CO_NEWLOCALS marks function bodies (not class bodies); comprehensions have no doc slot.
    is_function = bool(code.co_flags & 0x2) and code.co_name not in _COMPREHENSIONS
    if consts and is_function:
        if _HAS_DOCSTRING_FLAG:
            if code.co_flags & _HAS_DOCSTRING_FLAG:
                consts = consts[1:]
        elif consts[0] is None or isinstance(consts[0], str):
            consts = consts[1:]  # the docstring slot (None when there is no docstring)
    enc = cachekeys._enc_str
    enc(code.co_name, out)
    out.append(b"a%d,%d,%d;" % (code.co_argcount, code.co_kwonlyargcount, code.co_flags))
    cachekeys._enc_bytes(code.co_code, out)
    out.append(b"[")
    for const in consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, out, loads)
        else:
            cachekeys.encode_into(const, out)
    out.append(b"]")
    cachekeys.encode_into(code.co_names, out)
    cachekeys.encode_into(code.co_varnames, out)
    cachekeys.encode_into(code.co_freevars, out)
    loads.update(_global_loads(code))


def _global_loads(code: types.CodeType) -> set[str]:
    """The names `code` itself loads as globals (not attributes that share a name)."""
    import dis  # only when a cached task is first keyed

    return {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}


def _package(func: Any) -> str:
    return (getattr(func, "__module__", None) or "").partition(".")[0]


def _cell_getter(cell: Any) -> Callable[[], Any]:
    def get() -> Any:
        try:
            return cell.cell_contents
        except ValueError:  # an empty cell
            return ABSENT

    return get


def _as_function(value: Any) -> Any:
    own_key = getattr(type(value), "__cache_key__", None)
    if own_key is not None:  # a daglite task says its function identifies it
        try:
            inner = own_key(value)
        except Exception:  # a global's own method failing is not ours to report here
            return value
        if isinstance(inner, types.FunctionType):
            return inner
    return value


def _walk(func: types.FunctionType, out: list[bytes], state: list[Any], seen: set[int]) -> None:
    seen.add(id(func))
    loads: set[str] = set()
    code = func.__code__
    _code_parts(code, out, loads)
    env = func.__globals__
    package = _package(func)
    helpers: list[tuple[str, types.FunctionType]] = []
    for name in sorted(loads):
        value = _as_function(env.get(name, ABSENT))
        if value is ABSENT and name in builtins.__dict__:
            continue
        if isinstance(value, types.FunctionType):
            if _package(value) == package and id(value) not in seen:
                helpers.append((name, value))
            continue
        if isinstance(value, _STATIC) or not cachekeys.encodable(value):
            continue  # an unencodable global (a lock, a context variable) is a resource
        state.append((f"global '{name}'", functools.partial(env.get, name, ABSENT)))
    for name, cell in zip(code.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            value = ABSENT
        if isinstance(value, types.FunctionType) and id(value) in seen:
            continue  # a recursive inner function: itself
        state.append((f"closure variable '{name}'", _cell_getter(cell)))
    for name, helper in helpers:
        if id(helper) in seen:
            continue
        if helper.__defaults__ or helper.__kwdefaults__:
            state.append(
                (f"the defaults of '{name}'", lambda h=helper: (h.__defaults__, h.__kwdefaults__))
            )
        cachekeys._enc_str(name, out)
        _walk(helper, out, state, seen)


def _digest(out: list[bytes]) -> str:
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()


_RECURSIVE = Identity("<recursive>", ())
_active = threading.local()


def _active_ids() -> set[int]:
    """The functions this thread is fingerprinting or encoding (to cut cycles)."""
    active: set[int] | None = getattr(_active, "ids", None)
    if active is None:
        active = _active.ids = set()
    return active


_identities: weakref.WeakKeyDictionary[Any, tuple[Any, Identity]] = weakref.WeakKeyDictionary()


def function_identity(func: types.FunctionType) -> Identity:
    """The identity of a plain function (cached per function and code object)."""
    cached = _identities.get(func)
    if cached is not None and cached[0] is func.__code__:
        return cached[1]
    active = _active_ids()
    if id(func) in active:  # reached from its own globals while being built
        return _RECURSIVE
    active.add(id(func))
    try:
        out: list[bytes] = []
        state: list[Any] = []
        _walk(func, out, state, set())
    finally:
        active.discard(id(func))
    identity = Identity(_digest(out), tuple(state))
    _identities[func] = (func.__code__, identity)
    return identity


def class_fingerprint(cls: type) -> str:
    """The code of a class's methods (and of its bases from the same package)."""
    out: list[bytes] = []
    package = _package(cls)
    for klass in cls.__mro__:
        if klass is object or _package(klass) != package:
            continue
        cachekeys._enc_str(cachekeys._qualname(klass), out)
        for name, value in sorted(vars(klass).items()):
            value = _as_function(getattr(value, "__func__", value))  # class/static methods
            if isinstance(value, types.FunctionType):
                cachekeys._enc_str(name, out)
                cachekeys._enc_str(function_identity(value).fingerprint, out)
    return _digest(out)


def callable_identity(func: Callable[..., Any]) -> Identity:
    """The identity of a task's callable: a function, bound method, partial or object.

    A function's own defaults are left out (a call's bound arguments hold them).
    """
    if isinstance(func, types.FunctionType):
        return function_identity(func)
    if isinstance(func, types.MethodType):
        inner = callable_identity(func.__func__)
        bound = func.__self__
        name = getattr(func, "__name__", "method")
        fingerprint = _digest(
            [inner.fingerprint.encode(), class_fingerprint(type(bound)).encode()]
            if not isinstance(bound, type)
            else [inner.fingerprint.encode(), cachekeys._qualname(bound).encode()]
        )
        own = (f"the object '{name}' is bound to", lambda: func.__self__)
        return Identity(fingerprint, (own, *inner.state))
    if isinstance(func, functools.partial):
        inner = callable_identity(func.func)
        args = ("the partial's arguments", lambda: (func.args, func.keywords))
        return Identity(_digest([b"partial", inner.fingerprint.encode()]), (*inner.state, args))
    if isinstance(func, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return Identity(cachekeys._qualname(func), ())
    cls = type(func)
    fingerprint = _digest([cachekeys._qualname(cls).encode(), class_fingerprint(cls).encode()])
    return Identity(fingerprint, (("the callable object", lambda: func),))


def check_state(func: Callable[..., Any]) -> tuple[str, str] | None:
    """What in `func`'s own state cannot be encoded, if anything: `(label, why)`.

    Covers what decoration can see: closure variables, the bound object, a partial's
    arguments, a callable object. Globals are checked when the task is first keyed (they
    may be defined after the function).
    """
    target: Any = func
    parts: list[tuple[str, Any]] = []
    while True:
        if isinstance(target, types.MethodType):
            parts.append((f"the object '{target.__name__}' is bound to", target.__self__))
            target = target.__func__
        elif isinstance(target, functools.partial):
            parts.append(("the partial's arguments", (target.args, target.keywords)))
            target = target.func
        else:
            break
    if isinstance(target, types.FunctionType):
        for name, cell in zip(target.__code__.co_freevars, target.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if value is not target:
                parts.append((f"closure variable '{name}'", value))
    elif not isinstance(target, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        parts.append(("the callable object", target))
    for label, value in parts:
        try:
            cachekeys.encode(value)
        except (cachekeys.Unhashable, RecursionError) as exc:
            return label, f"{type(value).__name__}: {exc}"
    return None


# -- functions as values (arguments, closure variables, globals) ----------------------------


def encode_function(func: types.FunctionType, out: list[bytes], depth: int) -> None:
    """Encode a function value: its name, code fingerprint and current state."""
    identity = function_identity(func)
    out.append(b"F")
    cachekeys._enc_str(cachekeys._qualname(func), out)
    cachekeys._enc_str(identity.fingerprint, out)
    if not identity.state:
        return
    active = _active_ids()
    if id(func) in active:  # reached again through its own state: a back-reference
        out.append(b"^")
        return
    active.add(id(func))
    try:
        out.append(b"(")
        for label, get in identity.state:
            try:
                cachekeys.encode_into(get(), out, depth + 1)
            except cachekeys.Unhashable as exc:
                raise cachekeys.Unhashable(f"{label} of {func.__qualname__}: {exc}") from exc
        out.append(b")")
    finally:
        active.discard(id(func))


def code_fingerprint(func: Callable[..., Any]) -> str:
    """A hex digest of `func`'s code and of the same-package helpers it calls.

    Unchanged by comments, docstrings, blank lines and moving the function in its file.
    """
    target = getattr(func, "__func__", func)
    if not isinstance(target, types.FunctionType):
        return cachekeys._qualname(target)
    return function_identity(target).fingerprint


def refuse_uncacheable(func: Callable[..., Any], name: str) -> None:
    """Raise when `func`'s own state cannot be part of a cache key (see `check_state`).

    Raises:
        TypeError: Naming what cannot be encoded and how to make the task cacheable.
    """
    problem = check_state(func)
    if problem is not None:
        label, why = problem
        raise TypeError(
            f"task '{name}' cannot be cached: {label} cannot be part of a cache key ({why}). "
            f"To cache it, {HOW_TO_FIX}"
        )
