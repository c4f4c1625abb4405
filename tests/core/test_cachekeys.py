"""Cache keys: canonical argument encoding and code fingerprints (daglite.cachekeys)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from daglite import task
from daglite.cachekeys import Unhashable
from daglite.cachekeys import code_fingerprint
from daglite.cachekeys import encode
from daglite.caching import cache_key
from daglite.testing import memory_cache_store


def counted(**options):
    @task(**options)
    def f(x, y=0):
        return x + y

    return f, []


def test_dict_and_set_order_do_not_matter():
    f, _ = counted(cache=memory_cache_store())
    assert cache_key(f, {"a": 1, "b": 2}) == cache_key(f, {"b": 2, "a": 1})
    assert cache_key(f, {3, 1, 2}) == cache_key(f, {2, 3, 1})
    assert cache_key(f, frozenset("abc")) == cache_key(f, frozenset("cba"))
    assert cache_key(f, [1, 2]) != cache_key(f, [2, 1])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, True),
        (1, 1.0),
        ([1], (1,)),
        ({1}, frozenset({1})),
        ("1", b"1"),
        ("ab", ["a", "b"]),
        ({"a": 1}, [("a", 1)]),
        (None, "None"),
        (0.1, 0.1000000001),
    ],
)
def test_distinct_values_give_distinct_keys(a, b):
    assert encode(a) != encode(b)


def test_objects_and_functions_are_encoded_by_state_and_code():
    import dataclasses
    import datetime
    import enum
    from collections import OrderedDict
    from collections import namedtuple

    @dataclasses.dataclass
    class Point:
        x: int
        tags: set

    Pair = namedtuple("Pair", "a b")

    class Color(enum.Enum):
        RED = 1

    assert encode(Point(1, {"a", "b"})) == encode(Point(1, {"b", "a"}))
    assert encode(Point(1, set())) != encode(Point(2, set()))
    assert encode(Pair(1, 2)) != encode((1, 2))
    assert encode(OrderedDict(a=1)) != encode({"a": 1})
    assert encode(Color.RED) == encode(Color.RED)
    assert encode(datetime.date(2024, 1, 2)) != encode(datetime.date(2024, 1, 3))
    assert encode(Path("a")) != encode(Path("b"))
    assert encode(len) == encode(len)
    assert encode(Point) != encode(Pair)

    def one():
        return 1

    def two():
        return 2

    assert encode(one) != encode(two)
    assert encode(lambda: 1) == encode(lambda: 1)


def test_code_fingerprint_of_builtins_and_methods():
    assert code_fingerprint(len) == "builtins.len"

    class A:
        def m(self):
            return 1

    assert code_fingerprint(A().m) == code_fingerprint(A.m)


def test_module_constants_read_by_the_code_are_part_of_its_encoding():
    namespace = {"__name__": "constmod"}
    exec("LIMIT = 5\ndef f(x):\n    return min(x, LIMIT)\n", namespace)
    before = encode(namespace["f"])
    fingerprint = code_fingerprint(namespace["f"])
    namespace["LIMIT"] = 6
    assert encode(namespace["f"]) != before
    assert code_fingerprint(namespace["f"]) == fingerprint  # the code is the same
    namespace["LIMIT"] = 5
    assert encode(namespace["f"]) == before
    namespace["UNUSED"] = 1  # not read by the code: no effect
    assert encode(namespace["f"]) == before


def test_an_attribute_named_like_a_global_is_not_the_global():
    namespace = {"__name__": "attrmod", "lock": threading.Lock()}
    exec("def f(obj):\n    return obj.lock\n", namespace)
    encode(namespace["f"])  # `obj.lock` does not read the global `lock`


def test_a_function_reached_through_its_own_state_is_a_back_reference():
    namespace = {"__name__": "cyclemod"}
    exec("def f(x):\n    return TABLE[x](x)\nTABLE = {}\n", namespace)
    namespace["TABLE"]["f"] = namespace["f"]
    assert encode(namespace["f"]) == encode(namespace["f"])


def test_objects_may_name_their_own_key():
    class Conn:
        def __init__(self, url):
            self.url = url
            self.lock = threading.Lock()

        def __cache_key__(self):
            return self.url

    assert encode(Conn("a")) == encode(Conn("a")) != encode(Conn("b"))
    with pytest.raises(Unhashable):
        encode(threading.Lock())
