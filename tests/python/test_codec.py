"""Value and key encodings: round trips, ordering and refused inputs."""

import dataclasses
import math

import pytest

import sop
from sop import _sop


@dataclasses.dataclass
class Inner:
    a: int
    b: list


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    tags: tuple = ()


VALUES = [
    None, True, False, 0, 1, -1, 127, -33, 2**31, -2**63, 2**63 - 1, 2**63, 2**64 - 1,
    2**64, -2**63 - 1, 2**200, -(2**200), 0.0, -2.5, 1e300, math.inf, "", "héllo ☃",
    "x" * 1000, b"", b"\x00\xff", [], [1, "a", None, [2.5]], {}, {"a": {"b": [1, {"c": None}]}},
]


@pytest.mark.parametrize("v", VALUES, ids=repr)
def test_value_round_trip(v):
    assert _sop.decode_value(_sop.encode_value(v)) == v
    out = _sop.decode_value(_sop.encode_value(v))
    assert type(out) is type(v)


def test_value_conversions():
    assert _sop.decode_value(_sop.encode_value((1, 2))) == [1, 2]
    assert _sop.decode_value(_sop.encode_value(bytearray(b"ab"))) == b"ab"
    assert _sop.decode_value(_sop.encode_value(memoryview(b"ab"))) == b"ab"
    o = Outer("n", Inner(1, [Inner(2, [])]), ("t",))
    assert _sop.decode_value(_sop.encode_value(o)) == dataclasses.asdict(o) | {"tags": ["t"]}
    nan = _sop.decode_value(_sop.encode_value(math.nan))
    assert math.isnan(nan)


def nest(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


def test_value_depth_limit():
    assert _sop.decode_value(_sop.encode_value(nest(64))) == nest(64)
    with pytest.raises(sop.ValueTypeError):
        _sop.encode_value(nest(65))
    d = 1
    for _ in range(70):
        d = {"k": d}
    with pytest.raises(sop.ValueTypeError):
        _sop.encode_value(d)


@pytest.mark.parametrize("bad", [{1: 2}, {"a": {(1,): 2}}, {1, 2}, object(), "\ud800",
                                 Inner, complex(1, 2)], ids=repr)
def test_value_refused(bad):
    with pytest.raises(sop.ValueTypeError) as ei:
        _sop.encode_value(bad)
    assert isinstance(ei.value, TypeError)


def test_huge_int_value():
    with pytest.raises(sop.ValueTooLargeError):
        _sop.encode_value(2**9000)


def test_key_order_of_encoder():
    keys = [None, False, True, -2**63, -5, -0.5, 0, 0.5, 2, 10, 2**63, 2**64 - 1, 1e300,
            "", "a", "ab", "b", b"", b"\x00"]
    enc = [_sop.encode_key([k]) for k in keys]
    assert enc == sorted(enc)
    assert _sop.encode_key([1]) == _sop.encode_key([1.0])
    assert _sop.decode_key(_sop.encode_key(["x", 3, b"y"])) == ["x", 3, b"y"]
    d = _sop.encode_key([1, 2], descending=[False, True])
    assert _sop.encode_key([1, 3], descending=[False, True]) < d


@pytest.mark.parametrize("bad,exc", [
    (2**64, sop.KeyTypeError), (-2**63 - 1, sop.KeyTypeError), (math.nan, sop.InvalidArgumentError),
    ("\udc80", sop.KeyTypeError), ({"a": 1}, sop.KeyTypeError), ([1], sop.KeyTypeError),
    ("x" * 5000, sop.KeyTooLargeError), (b"x" * 5000, sop.KeyTooLargeError),
], ids=repr)
def test_key_refused(bad, exc):
    with pytest.raises(exc):
        _sop.encode_key([bad])
