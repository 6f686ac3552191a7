"""The plain-reading kernel's own reader, held to ``orjson.loads`` byte for byte.

:func:`aiotstream._kernels.plain_reading_columns` reads a message in the usual shape (``{"asset", "ts",
"metric", "value"}`` in that order, printable ASCII names) without ``orjson.loads``: its own JSON scanner, its
own int parse, Clinger's exact fast path for a value of at most 15-16 digits, one long double operation for
up to 19 digits (unless its result lies exactly halfway between two doubles) and Python's ``float(str)`` for
the rest. Every message it does not take goes to ``orjson.loads``. So the whole risk is a message this reader
takes differently from orjson: a value rounded otherwise, a number orjson refuses, a string orjson reads
otherwise (escapes, control bytes, non-ASCII), whitespace, a key order or a trailing byte. Here every such
message is generated, alone and in blocks, and the kernel's columns are compared with its twin's (the Python
path, ``orjson.loads`` of each message): the same None, the same names, times and values, the values by
their bits (-0.0 is not 0.0).
"""
from __future__ import annotations

import math
import random
import struct
from decimal import Decimal, localcontext
from fractions import Fraction

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiotstream.codecs.readings import plain_readings

MAX_BYTES = 4_096
T0 = 1_767_225_600_000_000_000


def _bits(xs: list[float]) -> list[int]:
    return [struct.unpack("<q", struct.pack("<d", x))[0] for x in xs]


def _same(raws: list[bytes]) -> None:
    got = plain_readings(raws, MAX_BYTES)
    twin = plain_readings(raws, MAX_BYTES, compiled=False)
    assert (got is None) == (twin is None), (raws, got, twin)
    if got is None or twin is None:
        return
    assert got.assets == twin.assets and got.metrics == twin.metrics, raws
    assert got.ts == twin.ts and list(map(type, got.ts)) == [int] * len(raws), raws
    assert got.T.tolist() == twin.T.tolist(), raws
    assert _bits(got.V.tolist()) == _bits(twin.V.tolist()), (raws, got.V.tolist(), twin.V.tolist())


def _msg(asset: bytes = b'"p-1"', ts: bytes = b"1767225600000000000", metric: bytes = b'"temp"',
         value: bytes = b"41.5", ws: tuple[bytes, ...] = (b"",) * 14) -> bytes:
    """A reading with ``ws[i]`` at each of the places JSON allows whitespace."""
    parts = [b"{", b'"asset"', b":", asset, b",", b'"ts"', b":", ts, b",", b'"metric"', b":", metric, b",",
             b'"value"', b":", value, b"}"]
    out = ws[0]
    for i, p in enumerate(parts):
        out += p + (ws[i + 1] if i + 1 < len(ws) else b"")
    return out


# ---- values: every way JSON writes a number, and near misses -------------------------------------------------

_digits = st.text("0123456789", min_size=1, max_size=25)


@st.composite
def _number(draw: st.DrawFn) -> bytes:
    """A JSON number's text (or a near miss: a leading zero, an empty fraction, a lone sign, a plus)."""
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    whole = draw(st.one_of(st.just("0"), _digits))
    frac = draw(st.one_of(st.just(""), _digits.map(lambda d: "." + d), st.just(".")))
    exp = draw(st.one_of(st.just(""), st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
                                                st.one_of(_digits, st.just(""))).map("".join)))
    return (sign + whole + frac + exp).encode()


_finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _float_text(draw: st.DrawFn) -> bytes:
    """A finite double as JSON writers print it: orjson, repr, fixed and scientific at any precision."""
    x = draw(_finite)
    how = draw(st.sampled_from(["orjson", "repr", "e", "f", "g"]))
    if how == "orjson":
        return orjson.dumps(x)
    if how == "repr":
        return repr(x).encode()
    p = draw(st.integers(0, 20))
    if how == "f" and abs(x) > 1e30:
        how = "e"
    text = format(x, f".{p}{how}")
    return text.encode()


@settings(max_examples=3_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_number(), _float_text(), st.integers(-2**70, 2**70).map(lambda i: str(i).encode())))
@example(b"-0")
@example(b"-0.0")
@example(b"0e5")
@example(b"1e-400")
@example(b"1e400")
@example(b"2.5e-320")
@example(b"9007199254740993")  # 2**53 + 1: an int past the double's exact range
@example(b"9007199254740993.0")
@example(b"123456789012345678")  # 18 digits: the kernel's own int
@example(b"1234567890123456789")  # 19: left to orjson
@example(b"1e22")
@example(b"1e23")
@example(b"8.98846567431158e307")
@example(b"0.1e-22")
@example(b"100000000000000000000000e-22")
def test_a_value_as_orjson_reads_it(value: bytes) -> None:
    _same([_msg(value=value)])


@st.composite
def _halfway(draw: st.DrawFn) -> bytes:
    """A decimal exactly halfway between two adjacent doubles (or a hair off it), in 16-20 digits: where a
    double-rounding reader goes wrong. (2**53 + 2i + 1) * 2**s is halfway between two doubles."""
    odd = 2**53 + 2 * draw(st.integers(0, 2**52 - 1)) + 1
    s = draw(st.integers(-4, 11))
    x = Fraction(odd) * Fraction(2) ** s
    nudge = draw(st.sampled_from([0, 0, 1, -1]))
    digits = draw(st.integers(16, 20))
    with localcontext() as ctx:
        ctx.prec = 60  # (the halfway point's decimal exactly)
        exact = Decimal(x.numerator) / Decimal(x.denominator)
        text = format(exact if nudge == 0 else exact + nudge * Decimal(10) ** -digits, "f")
    how = draw(st.sampled_from(["plain", "exp"]))
    if how == "exp":  # the same value with its point moved into an exponent
        whole, _, frac = text.partition(".")
        text = f"{whole}{frac}e-{len(frac)}" if frac else f"{whole}e0"
    if "." not in text and "e" not in text:
        text += ".0"  # (a float, not an int)
    return text.encode()


@settings(max_examples=2_000, deadline=None)
@given(_halfway())
@example(b"9007199254740993.0")  # halfway between 2**53 and 2**53 + 2
@example(b"9007199254740995.0")
@example(b"18014398509481986.0")  # (2**53 + 1) * 2
@example(b"4503599627370496.5")  # (2**53 + 1) / 2: 2**52 + 0.5, representable
@example(b"23.399999618530273")  # a float32 printed as a double
@example(b"0.30000000000000004")
@example(b"1.7976931348623157e308")
def test_values_at_and_next_to_halfway_points_round_as_float_does(value: bytes) -> None:
    got = plain_readings([_msg(value=value)], MAX_BYTES)
    assert got is not None
    assert _bits(got.V.tolist()) == _bits([float(value)]), value
    _same([_msg(value=value)])


# Decimals of at most 19 digits whose product or quotient, rounded once to long double's 64 bits, lands
# exactly halfway between two doubles though the exact value does not: rounding that result again would be
# off by one unit, so the reader must see it and go to float(str). Found by an exact search (fractions) over
# random 16-19-digit mantissas and exponents -27..27: about 1 in 4,000 such values.
_DOUBLE_ROUNDING_TRAPS = [
    b"3536321500649138443e-15", b"2357913279896808079e8", b"2052495492425461696e15", b"7937766118752807539e13",
    b"7747471016889171837e18", b"3693622439316206e-24", b"9370839720397643e-8", b"2415451309829535e-26",
    b"201859614806337892e-18", b"4311313868275153509e-13", b"1176956507616283268e14", b"12467693321222017e-27",
]


@pytest.mark.parametrize("value", _DOUBLE_ROUNDING_TRAPS)
def test_a_value_that_double_rounding_would_get_wrong(value: bytes) -> None:
    for text in (value, b"-" + value):
        got = plain_readings([_msg(value=text)], MAX_BYTES)
        assert got is not None and _bits(got.V.tolist()) == _bits([float(text)]), text


# ---- times ----------------------------------------------------------------------------------------------------

@settings(max_examples=1_000, deadline=None)
@given(st.one_of(st.integers(-2**64, 2**64).map(lambda i: str(i).encode()), _number()))
@example(str(2**63 - 1).encode())
@example(str(2**63).encode())
@example(str(-2**63).encode())
@example(str(-2**63 - 1).encode())
@example(b"9999999999999999999")  # 19 digits past int64
@example(b"-0")
@example(b"01")
@example(b"1.0")
@example(b"1e3")
def test_a_time_as_orjson_reads_it(ts: bytes) -> None:
    _same([_msg(ts=ts)])


# ---- names ----------------------------------------------------------------------------------------------------

@settings(max_examples=1_000, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=12), st.booleans())
@example("p-1", True)
@example('a"b', True)
@example("a\\b", False)
@example("a\x7f", True)
@example("a\x1f", True)
@example("é", False)
@example("", True)
def test_a_name_as_orjson_reads_it(name: str, as_asset: bool) -> None:
    text = orjson.dumps(name)  # escapes what JSON must escape
    _same([_msg(asset=text) if as_asset else _msg(metric=text)])
    raw = b'"' + name.encode("utf-8", "surrogatepass") + b'"'  # and unescaped, valid JSON or not
    _same([_msg(asset=raw) if as_asset else _msg(metric=raw)])


# ---- whitespace, order, trailing bytes, any byte ------------------------------------------------------------

_ws = st.sampled_from([b"", b"", b" ", b"\t", b"\n", b"\r", b"\r\n  ", b"\x0b", b"\x0c", b"\xa0"])


@settings(max_examples=1_000, deadline=None)
@given(st.tuples(*[_ws] * 18))
def test_whitespace_where_json_allows_it_and_where_it_does_not(ws: tuple[bytes, ...]) -> None:
    _same([_msg(ws=ws)])


@pytest.mark.parametrize("raw", [
    b'{"ts":1,"asset":"a","metric":"m","value":1.5}',  # another key order: orjson's path
    b'{"asset":"a","ts":1,"metric":"m","value":1.5,"value":2.5}',  # a repeated key
    b'{"asset":"a","ts":1,"metric":"m","value":1.5}}',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5}x',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5,}',
    b'{"asset":"a","ts":1,"metric":"m","value":}',
    b'{"asset":"a","ts":1,"metric":"m","value":true}',
    b'{"asset":"a","ts":1,"metric":"m","value":null}',
    b'{"asset":"a","ts":1,"metric":"m","value":NaN}',
    b'{"asset":"a","ts":1,"metric":"m","value":Infinity}',
    b'{"asset":"a","ts":1,"metric":"m","value":-}',
    b'{"asset":"a","ts":1,"metric":"m","value":.5}',
    b'{"asset":"a","ts":1,"metric":"m","value":5.}',
    b'{"asset":"a","ts":1,"metric":"m","value":0x10}',
    b'{"asset":"a","ts":1,"metric":"m","value":1_000}',
    b'{"asset":"a","ts":1,"metric":"m","value":00.5}',
    b'{"asset":"a","ts":1,"metric":"m" "value":1.5}',
    b'{"asset":"a","ts":1,"metric":"m","value"=1.5}',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5}\x00',
    b'{"asset":"a\x00","ts":1,"metric":"m","value":1.5}',
    b'{"asset":"a","ts":1,"metric":"m","Value":1.5}',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5} ',
    b' {"asset":"a","ts":1,"metric":"m","value":1.5}\n',
    b'{"asset":"a","ts":1,"metric":"m","value":1.5}\r',
])
def test_near_misses_of_the_usual_shape(raw: bytes) -> None:
    _same([raw])
    _same([_msg(), raw, _msg()])


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        what, at = rng.randrange(3), rng.randrange(len(b) + 1)
        byte = rng.choice([rng.randrange(256), *b'{}[],:"\\ -+.eE0123456789'])
        if what == 0 and b:
            del b[min(at, len(b) - 1)]
        elif what == 1:
            b.insert(at, byte)
        elif b:
            b[min(at, len(b) - 1)] = byte
    return bytes(b)


@settings(max_examples=2_000, deadline=None)
@given(st.randoms(use_true_random=False), _finite, st.integers(0, 2**63 - 1))
def test_any_few_bytes_changed(rng: random.Random, value: float, ts: int) -> None:
    raw = orjson.dumps({"asset": "pump-7", "ts": ts, "metric": "bearing_temp", "value": value})
    _same([_mutate(rng, raw)])


# ---- blocks: names repeat, shapes mix -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["s-1", "s-2", "s-10", "s-100", "é-1", 'q"1', ""]),
                          st.sampled_from(["v", "temp", "", "v2"]), st.integers(0, 2**62), _finite,
                          st.sampled_from(["orjson", "spaced", "reordered"])), min_size=1, max_size=40))
def test_blocks_of_mixed_shapes(rows: list) -> None:
    raws = []
    for a, m, t, v, how in rows:
        obj = {"asset": a, "ts": t, "metric": m, "value": v}
        if how == "spaced":
            raws.append(b" " + orjson.dumps(obj).replace(b",", b", ").replace(b":", b": "))
        elif how == "reordered":
            raws.append(orjson.dumps(dict(reversed(obj.items()))))
        else:
            raws.append(orjson.dumps(obj))
    _same(raws)


def test_many_distinct_names_outgrow_the_kernels_table() -> None:
    """More distinct names in one block than the kernel keeps (2,048): the rest come as new strs, the same."""
    raws = [orjson.dumps({"asset": f"a-{i}", "ts": T0 + i, "metric": f"m-{i % 7}", "value": i / 7})
            for i in range(6_000)]
    _same(raws)
    got = plain_readings(raws, MAX_BYTES)
    assert got is not None and got.assets[5_999] == "a-5999" and got.V[6] == 6 / 7


def test_the_fast_path_rounds_like_float_near_its_limits() -> None:
    """Values at the edge of Clinger's fast path (2**53 digits, 10**22) and just past it, and halfway
    cases, compared with Python's float() (which orjson's twin matches)."""
    texts = [b"9007199254740991e22", b"9007199254740992e-22", b"9007199254740991e-22", b"4503599627370497.5",
             b"0.30000000000000004", b"2.2250738585072011e-308", b"1.7976931348623157e308",
             b"5e-324", b"123456789012345.6", b"1234567890123456.7"]
    for text in texts:
        got = plain_readings([_msg(value=text)], MAX_BYTES)
        assert got is not None
        assert _bits(got.V.tolist()) == _bits([float(text)]), text
    assert plain_readings([_msg(value=b"1.8e308")], MAX_BYTES) is None  # orjson refuses it
    assert math.copysign(1.0, plain_readings([_msg(value=b"-0.0")], MAX_BYTES).V[0]) == -1.0
    assert math.copysign(1.0, plain_readings([_msg(value=b"-0")], MAX_BYTES).V[0]) == 1.0  # the int 0
