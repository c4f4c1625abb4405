"""The cache key of a task call: the task's identity, its callable's state, its arguments.

A task's `TaskKeys` is built from its spec on first use (`TaskSpec.keys`). Keys hash the task's
qualified name, `cache_version`, the fingerprint of its code and the canonical encoding
(`daglite.cachekeys`) of its bound arguments minus `cache_ignore` and of its callable's
state (`daglite.cacheidentity`), read again at every call. `cache_hash=` replaces the
arguments' part by any string it returns.
"""

from __future__ import annotations

import hashlib
import inspect
import types
import weakref
from collections.abc import Callable
from typing import Any

from daglite import cachekeys

_SCALARS = frozenset({int, str, float, bool, type(None)})


class TaskKeys:
    """What a task's keys need that does not change between calls (kept on its spec).

    Arguments are encoded in the signature's order (so `f(1, y=2)` and `f(y=2, x=1)` share a
    key), followed by the callable's state (`daglite.cacheidentity`: closure variables,
    globals it reads, the bound object, ...), read again at every call. When all of these
    are an `int`, `str`, `float`, `bool` or `None`, their `repr` (stable across runs for
    these types, and distinct between them) is the encoding.

    With `cache_hash`, its string replaces the arguments; the state is still added when it
    can be encoded, and left to `cache_hash` when it cannot.

    A task defined in a class keys the object it is bound to (its first argument, `self` or
    `cls`) as any argument, plus the code of that object's class (the other methods it may
    call), as a bound method's key does (`daglite.cacheidentity`).
    """

    __slots__ = (
        "classes",
        "func",
        "hash_fn",
        "labels",
        "name",
        "names",
        "owner",
        "prefix",
        "state",
        "warned",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        qualname: str,
        parameters: tuple[str, ...],
        hash_fn: Callable[..., Any] | None,
        version: str | None,
        ignore: tuple[str, ...],
    ) -> None:
        from daglite.cacheidentity import callable_identity

        self.func = func
        self.name = name
        self.warned = False
        self.hash_fn = hash_fn
        self.names = tuple(n for n in parameters if n not in ignore)
        self.owner = _owner_parameter(func, self.names) if hash_fn is None else None
        self.classes: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
        identity = callable_identity(func)
        state = identity.state
        if self.hash_fn is not None:  # what cannot be encoded is left to cache_hash
            state = tuple((label, get) for label, get in state if cachekeys.encodable(get()))
        self.state = tuple(get for _, get in state)
        self.labels = self.names + tuple(label for label, _ in state)
        head = [b"daglite-cache-1\x00"]
        cachekeys._enc_str(qualname, head)
        cachekeys._enc_str(version or "", head)
        if self.hash_fn is None:
            cachekeys._enc_str(identity.fingerprint, head)
            cachekeys.encode_into(self.names, head)
        self.prefix = b"".join(head)
        if self.hash_fn is None and self.state:  # an unencodable global: say so now
            self._general([get() for get in self.state], len(self.names))

    def snapshot(self) -> tuple[bytes, ...]:
        """The encoding of each item of the callable's state, now (empty without state)."""
        parts = []
        for get in self.state:
            try:
                parts.append(cachekeys.encode(get()))
            except (cachekeys.Unhashable, RecursionError):
                parts.append(b"?")
        return tuple(parts)

    def changed_since(self, before: tuple[bytes, ...]) -> list[str]:
        """The labels of the state items whose value differs from `before` (a `snapshot`)."""
        labels = self.labels[len(self.names) :]
        return [label for label, a, b in zip(labels, before, self.snapshot()) if a != b]

    def key(self, inputs: dict[str, Any]) -> str:
        """The key of a call with the bound arguments `inputs` (a hex digest).

        Raises:
            TypeError: An argument or the callable's state cannot be part of a key (the
                message names it and says what to do), or `cache_hash` returned a non-str.
        """
        if self.hash_fn is not None:
            custom = self.hash_fn(self.func, inputs)
            if not isinstance(custom, str):
                raise TypeError(
                    f"cache_hash of task '{self.name}' returned "
                    f"{type(custom).__name__} {custom!r}; it must return a str"
                )
            out = [self.prefix]
            cachekeys._enc_str(custom, out)
            if self.state:
                out.append(self._general([get() for get in self.state], len(self.names)))
            material = b"".join(out)
        else:
            values = [inputs[name] for name in self.names]
            if self.state:
                values += [get() for get in self.state]
            if self.owner is not None:
                values.append(self._class_code(inputs[self.owner]))
            scalars = _SCALARS
            for value in values:
                if type(value) not in scalars:
                    material = self._general(values)
                    break
            else:
                material = self.prefix + b"r" + repr(values).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(material, digest_size=20).hexdigest()

    def _class_code(self, bound: Any) -> str:
        """The code fingerprint of the class of `bound` when this task is its method, else "".

        Kept per class: code edited between runs changes it; a class patched while running
        keeps the fingerprint it had at its first key.
        """
        cls = bound if isinstance(bound, type) else type(bound)
        found = self.classes.get(cls)
        if found is None:
            found = ""
            name = getattr(self.func, "__name__", "")
            for klass in cls.__mro__:
                attr = vars(klass).get(name)
                if attr is not None:
                    task = getattr(attr, "__func__", attr)  # a classmethod's task
                    if getattr(task, "func", None) is self.func:
                        from daglite.cacheidentity import class_fingerprint

                        found = class_fingerprint(cls)
                    break
            self.classes[cls] = found
        return found

    def _general(self, values: list[Any], start: int = 0) -> bytes:
        from daglite.cacheidentity import HOW_TO_FIX

        out = [self.prefix, b"g"]
        for index, value in enumerate(values):
            try:
                cachekeys.encode_into(value, out)
            except (cachekeys.Unhashable, RecursionError) as exc:
                label = self.labels[index + start]
                if index + start == 0 and label in ("self", "cls"):  # a method's object
                    raise TypeError(
                        f"task '{self.name}': the object it is bound to (argument '{label}', "
                        f"{type(value).__name__}) cannot be part of a cache key: {exc}. To "
                        f"cache this task, {HOW_TO_FIX}; or leave the object out of the key "
                        f"with cache_ignore=('{label}',)"
                    ) from exc
                if index + start < len(self.names):
                    raise TypeError(
                        f"task '{self.name}': argument '{label}' "
                        f"({type(value).__name__}) cannot be part of a cache key: {exc}. "
                        f"Leave it out with cache_ignore=('{label}',) or pass cache_hash=..."
                    ) from exc
                raise TypeError(
                    f"task '{self.name}': {label} ({type(value).__name__}) cannot be "
                    f"part of a cache key: {exc}. To cache this task, {HOW_TO_FIX}"
                ) from exc
        return b"".join(out)


def _owner_parameter(func: Callable[..., Any], names: tuple[str, ...]) -> str | None:
    """The first parameter of a function defined in a class body (its object), if keyed."""
    if not isinstance(func, types.FunctionType) or not names:
        return None
    parent, _, _ = func.__qualname__.rpartition(".")
    if not parent or parent.endswith("<locals>"):
        return None
    first = next(iter(inspect.signature(func).parameters.values()), None)
    if first is None or first.name != names[0] or first.kind not in _POSITIONAL:
        return None
    return first.name


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
