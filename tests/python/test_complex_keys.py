"""Complex keys (is_primitive_key=False): dict and dataclass keys ordered by
an IndexSpecification (or, without one, by every field in name order), with
ride-on fields, prefix scans, dict lookups, the spec kept with the store, and
bad input refused with specific exceptions and nothing written.

The order the engine must produce is defined here by a Python equivalent of
the key, ``sort_key``: values of different types order
None < bool < number < str < bytes; numbers (int and float) by exact value
(1 == 1.0, -0.0 == 0.0); str by code point (= UTF-8 bytes); bytes
bytewise; a descending field reverses the order of that field only; items
with equal keys keep insertion order (item ids are time-ordered).
"""

import json
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List

import pytest

import sop
import sop.database
from sop import BtreeOptions, Item, PagingDirection, PagingInfo
from sop.btree import IndexFieldSpecification, IndexSpecification, Relation

N_BIG = 5_000 if os.environ.get("SOP_SANITIZER") else 100_000


# ---- the Python equivalent of the engine's key order ---------------------------

def type_rank(v: Any):
    """One key field as a tuple that Python orders like the engine."""
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1, v)
    if isinstance(v, (int, float)):
        return (2, v)  # int/float compare exactly in Python
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, (bytes, bytearray)):
        return (4, bytes(v))
    raise TypeError(v)


def sort_records(records: List[Dict], spec: List[tuple]) -> List[Dict]:
    """sorted() by the spec [(field, ascending), ...]: stable sorts from the
    last field to the first (reverse=True keeps stability), so ties keep
    insertion order like the engine's item ids."""
    out = list(records)
    for name, asc in reversed(spec):
        out.sort(key=lambda r: type_rank(r[name]), reverse=not asc)
    return out


def typed(d: Dict) -> List:
    """A dict with value types made visible (1, 1.0 and True differ)."""
    return [(k, type(v).__name__, v) for k, v in d.items()]


def make_spec(*fields):
    return IndexSpecification(index_fields=[IndexFieldSpecification(n, a) for n, a in fields])


def complex_store(db, ctx, t, name, spec=None, unique=False, slot_length=500):
    bo = BtreeOptions(name, is_unique=unique, slot_length=slot_length)
    bo.is_primitive_key = False
    return db.new_btree(ctx, name, t, options=bo, index_spec=spec)


def walk(store, ctx, direction=PagingDirection.Forward, keys_only=True, page=5000):
    """Every item from first (or last) to the end, in pages."""
    fwd = direction == PagingDirection.Forward
    if not (store.first(ctx) if fwd else store.last(ctx)):
        return []
    out = []
    while True:
        pi = PagingInfo(page_size=page, direction=direction.value)
        got = store.get_keys(ctx, pi) if keys_only else store.get_items(ctx, pi)
        out += got
        if len(got) < page:
            return out


# ---- random records --------------------------------------------------------------

UNICODE = "aAzZ09 é中文😀\u0000\u00ff\uffff\U0010ffff_-"


def rand_str(rnd):
    return "".join(rnd.choice(UNICODE) for _ in range(rnd.randrange(0, 6)))


def rand_scalar(rnd):
    k = rnd.randrange(12)
    if k == 0:
        return None
    if k == 1:
        return rnd.random() < 0.5
    if k == 2:
        return rnd.randrange(-5, 6)
    if k == 3:
        return rnd.choice([2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
                           -2**63, -2**63 + 1, -(2**53) - 1])
    if k == 4:
        return rnd.randrange(-2**63, 2**64)
    if k == 5:
        return rnd.choice([0.0, -0.0, 1.0, -1.5, 2.0**53, 2.0**63, 2.0**64, 1e300, -1e300,
                           math.inf, -math.inf, 5e-324, 0.1])
    if k == 6:
        return rnd.uniform(-10, 10)
    if k in (7, 8):
        return rand_str(rnd)
    if k == 9:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 5)))
    if k == 10:
        return float(rnd.randrange(-5, 6))  # equal to an int of case 2
    return rnd.choice(["US", "EU", "US", ""])


def test_random_order_forward_backward_and_reopen(db, ctx):
    """At N_BIG records: get_items forwards and backwards equals sorted() with
    the equivalent key, before and after reopening the database."""
    rnd = random.Random(20240601)
    spec = [("a", True), ("b", False), ("c", True), ("d", False)]
    records = []
    for seq in range(N_BIG):
        records.append({
            "seq": seq,  # ride-on, identifies the record
            "a": rand_scalar(rnd),
            "b": rnd.choice([rnd.randrange(-3, 4), rnd.randrange(-2**63, 2**63), None]),
            "c": rnd.choice(["x", "y", "", "é", "😀", None, rand_str(rnd)]),
            "d": rand_scalar(rnd),
            "tags": [seq % 3, {"nested": "ride-on values may nest"}] if seq % 7 == 0 else [],
        })
    want = [r["seq"] for r in sort_records(records, spec)]
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "rand", make_spec(*spec))
        for i in range(0, N_BIG, 10_000):
            assert s.add(ctx, [Item(key=r, value=r["seq"]) for r in records[i:i + 10_000]])
        assert s.count() == N_BIG
        got = walk(s, ctx, keys_only=False)
        assert [i.key["seq"] for i in got] == want
        assert all(i.value == i.key["seq"] for i in got)
        # keys come back with their types (3.0 stays a float, True a bool)
        for i in got[:: max(1, N_BIG // 2000)]:
            assert typed(i.key) == typed(records[i.key["seq"]])
        back = walk(s, ctx, PagingDirection.Backward)
        assert [i.key["seq"] for i in back] == want[::-1]
    sop.database._close_all()
    db2 = sop.Database(sop.DatabaseOptions(stores_folders=[db.options.stores_folders[0]]))
    with db2.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
        s = db2.open_btree(ctx, "rand", t)
        assert not s.is_primitive_key
        assert [i.key["seq"] for i in walk(s, ctx)] == want
        assert [i.key["seq"] for i in walk(s, ctx, PagingDirection.Backward)] == want[::-1]


def test_sort_key_definition():
    """The equivalent key itself: the documented cross-type order."""
    vals = [b"", "a", 2**64 - 1, 1.5, 1, True, False, None, -math.inf, "", b"\x00"]
    got = sorted(vals, key=type_rank)
    assert got == [None, False, True, -math.inf, 1, 1.5, 2**64 - 1, "", "a", b"", b"\x00"]


def test_scalar_order_single_field(db, ctx):
    """One field, every type: the engine's order is sort_key's order, and
    values equal as numbers (1, 1.0) are the same key in a unique store."""
    vals = [None, False, True, -2**63, -2**53 - 1, -1.5, -0.0, 1, 2**53, 2**53 + 1,
            2.0**60, 2**63, 2**64 - 1, 2.0**64, math.inf, "", "A", "a", "a\x00", "ab",
            "é", "😀", b"", b"\x00", b"\x00\x00", b"\xff"]
    rnd = random.Random(5)
    shuffled = vals[:]
    rnd.shuffle(shuffled)
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "one", make_spec(("v", True)), unique=True)
        for v in shuffled:
            assert s.add(ctx, {"v": v}, repr(v))
        assert not s.add(ctx, {"v": 1.0}, "dup")      # 1.0 == 1
        assert not s.add(ctx, {"v": 0}, "dup")        # 0 == -0.0
        assert s.add(ctx, {"v": 2**53 + 2}, "x")      # exact beyond 2**53
        got = [i.key["v"] for i in walk(s, ctx)]
        want = sorted(vals + [2**53 + 2], key=type_rank)
        assert [typed({"v": g}) for g in got] == [typed({"v": w}) for w in want]
        s2 = complex_store(db, ctx, t, "one_desc", make_spec(("v", False)), unique=True)
        for v in shuffled:
            assert s2.add(ctx, {"v": v}, 0)
        got = [i.key["v"] for i in walk(s2, ctx)]
        assert [typed({"v": g}) for g in got] == [
            typed({"v": w}) for w in sorted(vals, key=type_rank, reverse=True)]


# ---- prefix scans ----------------------------------------------------------------

@pytest.mark.parametrize("first_asc", [True, False])
def test_prefix_scans(db, ctx, first_asc):
    rnd = random.Random(7)
    regions = ["US", "EU", "APAC", "U", "USA", ""]
    depts = ["Eng", "Sales", "Ops", "E"]
    records = []
    seen = set()
    while len(records) < 2000:  # of 2400 possible
        k = (rnd.choice(regions), rnd.choice(depts), rnd.randrange(-50, 50))
        if k in seen:
            continue
        seen.add(k)
        records.append({"region": k[0], "department": k[1], "employee_id": k[2],
                        "note": rnd.random()})
    spec = [("region", first_asc), ("department", True), ("employee_id", False)]
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "emp", make_spec(*spec), unique=True, slot_length=16)
        assert s.add(ctx, [Item(key=r, value=i) for i, r in enumerate(records)])

        def scan(prefix):
            """find(prefix), then walk while the keys match."""
            found = s.find(ctx, prefix)
            out = []
            if found:
                while True:
                    page = s.get_keys(ctx, PagingInfo(page_size=64))
                    stop = False
                    for it in page:
                        if all(it.key[f] == v for f, v in prefix.items()):
                            out.append(it.key)
                        else:
                            stop = True
                            break
                    if stop or len(page) < 64:
                        break
            return found, out

        for region in regions + ["NOPE", "UK"]:
            want = sort_records([r for r in records if r["region"] == region], spec)
            found, got = scan({"region": region})
            assert found == bool(want)
            assert [typed(k) for k in got] == [typed(k) for k in want]
            for dept in depts + ["Zzz"]:
                want2 = [r for r in want if r["department"] == dept]
                found, got = scan({"region": region, "department": dept})
                assert found == bool(want2)
                assert got == want2
        # get_values with a prefix: the first item of the range
        first_us = sort_records([r for r in records if r["region"] == "US"], spec)[0]
        [it] = s.get_values(ctx, Item(key={"region": "US"}))
        assert it.key == first_us and it.value == records.index(first_us)
        [it] = s.get_values(ctx, Item(key={"region": "NOPE"}))
        assert it.key == {"region": "NOPE"} and it.value is None
        # a full key is an exact lookup, not a prefix
        r0 = records[0]
        assert s.find(ctx, {k: r0[k] for k in ("region", "department", "employee_id")})
        assert not s.find(ctx, {"region": r0["region"], "department": r0["department"],
                                "employee_id": 1000})


# ---- dict lookups of dataclass keys, ride-on fields ----------------------------------

@dataclass
class DocKey:
    doc_id: int
    is_deleted: bool = False
    timestamp: int = 0


@dataclass
class UserKey:
    region: str
    department: str
    employee_id: int


@dataclass
class Profile:
    name: str
    role: str
    skills: List[str] = field(default_factory=list)


def test_dict_lookups_find_dataclass_keys(db, ctx):
    spec = make_spec(("region", True), ("department", True), ("employee_id", True))
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "users", spec, unique=True)
        for i, (r, d) in enumerate([("US", "Eng"), ("US", "Sales"), ("EU", "Eng")]):
            assert s.add(ctx, Item(key=UserKey(r, d, 100 + i),
                                   value=Profile(f"n{i}", "Dev", ["c", "py"])))
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "users", t)
        # field order of the dict does not matter; values come back as dicts
        q = {"employee_id": 101, "department": "Sales", "region": "US"}
        assert s.find(ctx, q)
        assert s.get_current_item(ctx).value == {"name": "n1", "role": "Dev",
                                                 "skills": ["c", "py"]}
        [it] = s.get_values(ctx, Item(key=q))
        assert it.key == {"region": "US", "department": "Sales", "employee_id": 101}
        assert it.value["name"] == "n1"
        # the dataclass finds it too, and so does a float equal to the id
        assert s.find(ctx, UserKey("EU", "Eng", 102))
        assert s.find(ctx, {"region": "EU", "department": "Eng", "employee_id": 102.0})
        assert not s.find(ctx, {"region": "EU", "department": "Eng", "employee_id": 103})
        items = s.get_values(ctx, [Item(key=UserKey("US", "Eng", 100)), Item(key=q),
                                   Item(key={"region": "XX", "department": "", "employee_id": 0})])
        assert [i.value["name"] if i.value else None for i in items] == ["n0", "n1", None]


def test_ride_on_fields(db, ctx):
    spec = make_spec(("doc_id", True))
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "docs", spec, unique=True)
        assert s.add(ctx, Item(key=DocKey(100, False, 1), value="A"))
        assert s.add(ctx, Item(key=DocKey(101, True, 2), value="B"))
        # uniqueness ignores ride-on fields
        assert not s.add(ctx, Item(key=DocKey(100, True, 9), value="C"))
        assert s.count() == 2
        # found whatever the ride-on fields say
        assert s.find(ctx, DocKey(100, True, 12345))
        assert s.get_current_key(ctx).key == {"doc_id": 100, "is_deleted": False,
                                              "timestamp": 1}
        # update_key changes ride-on fields
        assert s.update_key(ctx, Item(key=DocKey(100, True, 7)))
        assert not s.update_key(ctx, Item(key=DocKey(999, True, 7)))  # no such doc_id
        s.first(ctx)
        keys = s.get_keys(ctx, PagingInfo(page_size=10))
        assert [k.key for k in keys] == [
            {"doc_id": 100, "is_deleted": True, "timestamp": 7},
            {"doc_id": 101, "is_deleted": True, "timestamp": 2}]
        assert all(k.value is None for k in keys)
        # update_current_key: ride-on fields may change, indexed ones may not
        assert s.find(ctx, {"doc_id": 101})
        assert s.update_current_key(ctx, Item(key={"doc_id": 101, "is_deleted": False,
                                                   "extra": [1, 2]}))
        with pytest.raises(sop.KeyChangedError) as ei:
            s.update_current_key(ctx, Item(key=DocKey(102, False, 0)))
        assert ei.value.code == sop._sop.SOP_KEY_CHANGED
        assert isinstance(ei.value, sop.BtreeError)
        assert s.get_current_key(ctx).key == {"doc_id": 101, "is_deleted": False,
                                              "extra": [1, 2]}
        # update / upsert replace the key document too
        assert s.update(ctx, DocKey(101, True, 3), "B2")
        assert s.get_values(ctx, Item(key={"doc_id": 101}))[0].key == {
            "doc_id": 101, "is_deleted": True, "timestamp": 3}
        assert s.upsert(ctx, {"doc_id": 102, "x": None}, "C")
        assert s.remove(ctx, {"doc_id": 100, "is_deleted": "whatever"})
        assert [i.key["doc_id"] for i in walk(s, ctx)] == [101, 102]
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "docs", t)
        assert [(i.key, i.value) for i in walk(s, ctx, keys_only=False)] == [
            ({"doc_id": 101, "is_deleted": True, "timestamp": 3}, "B2"),
            ({"doc_id": 102, "x": None}, "C")]


def test_no_spec_orders_by_field_names(db, ctx):
    """Without a spec every field is a key field, in the order of the
    field names (not of declaration), ascending."""
    @dataclass
    class K:
        zeta: int
        alpha: str

    rnd = random.Random(3)
    recs = [K(rnd.randrange(5), rnd.choice("abc")) for _ in range(200)]
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "plain")
        for r in recs:
            s.add(ctx, r, None)
        got = [(i.key["alpha"], i.key["zeta"]) for i in walk(s, ctx)]
        assert got == sorted((r.alpha, r.zeta) for r in recs)
        assert s.find(ctx, {"zeta": recs[0].zeta, "alpha": recs[0].alpha})
        assert s.get_store_info().index_specification == ""
        with pytest.raises(sop.KeyTypeError):
            s.add(ctx, {}, 1)
        # every field is a key field here, so none may nest
        with pytest.raises(sop.KeyTypeError, match="'tags'"):
            s.add(ctx, {"alpha": "a", "tags": [1]}, 1)


def test_values_stored_natively(db, ctx):
    vals = [Profile("a", "b", ["x"]), {"k": [1, 2.5, None, {"z": b"\x00"}]}, [1, "two", 3.0],
            "text", 42, 2**80, 1.25, True, None, b"raw"]
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "vals", make_spec(("i", True)))
        for i, v in enumerate(vals):
            s.add(ctx, {"i": i}, v)
        got = [it.value for it in walk(s, ctx, keys_only=False)]
    assert got[0] == {"name": "a", "role": "b", "skills": ["x"]}
    assert got[1:] == vals[1:]
    assert isinstance(got[6], float) and got[7] is True


# ---- the spec kept with the store ------------------------------------------------------

def test_spec_kept_with_store(db, ctx, subproc):
    spec = make_spec(("region", True), ("employee_id", False))
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "emp", spec, unique=True)
        for i in range(10):
            s.add(ctx, UserKey("US" if i % 2 else "EU", "d", i), i)
        info = s.get_store_info()
        assert json.loads(info.index_specification) == {"index_fields": [
            {"field_name": "region", "ascending_sort_order": True},
            {"field_name": "employee_id", "ascending_sort_order": False}]}
        assert s._index_spec == sop._sop.encode_value([["region", True],
                                                       ["employee_id", False]])
    # the same spec via set_index_specification / JSON text: compatible
    bo = BtreeOptions("emp", is_unique=True, is_primitive_key=False)
    bo.set_index_specification(spec)
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "emp", t, bo)
        assert s.count() == 10
    # another spec: incompatible
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreIncompatibleError):
            complex_store(db, ctx, t, "emp", make_spec(("region", True)), unique=True)
    sop.database._close_all()
    out = subproc('''
        import sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            s = db.open_btree(ctx, "emp", t)
            s.first(ctx)
            print([(i.key["region"], i.key["employee_id"])
                   for i in s.get_keys(ctx, sop.PagingInfo(page_size=20))])
            print(s.find(ctx, {"region": "US"}), s.get_current_key(ctx).key["employee_id"])
        ''', db.options.stores_folders[0])
    want = [("EU", i) for i in (8, 6, 4, 2, 0)] + [("US", i) for i in (9, 7, 5, 3, 1)]
    assert out.splitlines() == [repr(want), "True 9"]


@pytest.mark.parametrize("spec, exc", [
    ('{"index_fields": [{"field_name": "a"}, {"field_name": "a"}]}', sop.InvalidArgumentError),
    ('{"index_fields": [{"field_name": ""}]}', sop.InvalidArgumentError),
    ('{"index_fields": [{"field_name": 3}]}', sop.InvalidArgumentError),
    ("mapX['a'] < mapY['a']", sop.InvalidArgumentError),  # CEL: not supported
])
def test_bad_specs(db, ctx, spec, exc):
    with db.begin_transaction(ctx) as t:
        bo = BtreeOptions("s", is_primitive_key=False, index_specification=spec)
        with pytest.raises(exc):
            db.new_btree(ctx, "s", t, bo)
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "s", t)


def test_spec_object_forms(db, ctx):
    """A tuple of fields, a list, and an empty spec (= no spec)."""
    with db.begin_transaction(ctx) as t:
        a = complex_store(db, ctx, t, "a", IndexSpecification(
            index_fields=(IndexFieldSpecification("x", ascending_sort_order=False),)))
        b = complex_store(db, ctx, t, "b", IndexSpecification(index_fields=[]))
        for i in range(3):
            a.add(ctx, {"x": i, "y": -i}, i)
            b.add(ctx, {"x": i, "y": -i}, i)
        assert [i.key["x"] for i in walk(a, ctx)] == [2, 1, 0]
        assert [i.key["x"] for i in walk(b, ctx)] == [0, 1, 2]
        assert b._index_spec == b""


# ---- bad input --------------------------------------------------------------------------

BAD_KEYS = [
    (5, sop.KeyTypeError),
    ("US", sop.KeyTypeError),
    (None, sop.KeyTypeError),
    (("US", "Eng", 1), sop.KeyTypeError),
    ([{"region": "US"}], sop.KeyTypeError),
    ({"region": "US", "department": "Eng"}, sop.KeyTypeError),            # missing field
    ({"department": "Eng", "employee_id": 1}, sop.KeyTypeError),
    ({"region": {"a": 1}, "department": "Eng", "employee_id": 1}, sop.KeyTypeError),
    ({"region": "US", "department": ["Eng"], "employee_id": 1}, sop.KeyTypeError),
    ({"region": "US", "department": "Eng", "employee_id": 2**64}, sop.KeyTypeError),
    ({"region": "US", "department": "Eng", "employee_id": -2**63 - 1}, sop.KeyTypeError),
    ({"region": "US", "department": "Eng", "employee_id": math.nan}, sop.KeyTypeError),
    ({"region": "US", "department": "Eng", "employee_id": object()}, sop.KeyTypeError),
    ({"region": "\ud800", "department": "Eng", "employee_id": 1}, sop.KeyTypeError),
    ({"region": "US", "department": "Eng", "employee_id": 1, 5: "x"}, sop.KeyTypeError),
    ({"region": "x" * 5000, "department": "Eng", "employee_id": 1}, sop.KeyTooLargeError),
    ({"region": "US", "department": "Eng", "employee_id": 1, "blob": b"x" * (1 << 20)},
     sop.KeyTooLargeError),
]


@pytest.mark.parametrize("bad, exc", BAD_KEYS, ids=lambda v: repr(v)[:40])
def test_bad_keys_write_nothing(db, ctx, bad, exc):
    spec = make_spec(("region", True), ("department", True), ("employee_id", True))
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "emp", spec, unique=True)
        s.add(ctx, UserKey("US", "Eng", 0), "seed")
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "emp", t)
        good = [Item(key=UserKey("EU", "Ops", 1), value=1)]
        for call in (lambda: s.add(ctx, bad, 1),
                     lambda: s.add(ctx, good + [Item(key=bad, value=2)]),
                     lambda: s.upsert(ctx, bad, 1),
                     lambda: s.update(ctx, bad, 1),
                     lambda: s.remove(ctx, [UserKey("US", "Eng", 0), bad]),
                     lambda: s.update_key(ctx, [Item(key=UserKey("US", "Eng", 0)),
                                                Item(key=bad)])):
            with pytest.raises(exc) as ei:
                call()
            assert isinstance(ei.value, sop.InvalidArgumentError)
        assert s.count() == 1
        if exc is sop.KeyTypeError and isinstance(bad, dict) and "region" in bad \
                and "department" in bad and len(bad) == 2:
            pass  # a valid prefix: lookups accept it
        else:
            with pytest.raises(exc):
                s.find(ctx, bad)
        # the transaction is still usable, and nothing changed
        assert [(i.key, i.value) for i in walk(s, ctx, keys_only=False)] == [
            ({"region": "US", "department": "Eng", "employee_id": 0}, "seed")]


def test_bad_lookups(db, ctx):
    spec = make_spec(("region", True), ("department", True), ("employee_id", True))
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "emp", spec)
        s.add(ctx, UserKey("US", "Eng", 0), 1)
        with pytest.raises(sop.KeyTypeError, match="'department'"):
            s.find(ctx, {"region": "US", "employee_id": 0})  # a gap in the prefix
        with pytest.raises(sop.KeyTypeError, match="'region'"):
            s.find(ctx, {"department": "Eng"})
        with pytest.raises(sop.KeyTypeError):
            s.get_values(ctx, Item(key={"employee_id": 0}))
        with pytest.raises(sop.KeyTypeError):  # find_with_id needs the full key
            s.find_with_id(ctx, {"region": "US"}, "00000000-0000-0000-0000-000000000001")
        assert s.find(ctx, {"region": "US", "other": 1})  # extra fields ride along


def test_huge_integers_exact(db, ctx):
    vals = [2**53 + d for d in range(-3, 4)] + [2**64 - 1 - d for d in range(3)] + \
           [-2**63 + d for d in range(3)]
    with db.begin_transaction(ctx) as t:
        s = complex_store(db, ctx, t, "big", make_spec(("n", True)), unique=True)
        for v in reversed(vals):
            assert s.add(ctx, {"n": v}, str(v))
        got = walk(s, ctx, keys_only=False)
        assert [i.key["n"] for i in got] == sorted(vals)
        assert all(i.value == str(i.key["n"]) for i in got)
        assert s.find(ctx, {"n": 2**53 + 1}) and s.get_current_item(ctx).value == str(2**53 + 1)


def test_relations_kept(db, ctx):
    rel = [Relation(source_fields=["user_id"], target_store="users", target_fields=["id"])]
    bo = BtreeOptions(is_primitive_key=False, relations=rel)
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "orders", t, options=bo,
                         index_spec=make_spec(("order_id", True)))
        s.add(ctx, {"order_id": 1, "user_id": "u1"}, {"total": 3})
    sop.database._close_all()
    with db.begin_transaction(ctx) as t:
        info = db.open_btree(ctx, "orders", t).get_store_info()
        assert info.relations == rel and info.name == "orders"
        assert not info.is_primitive_key


def test_primitive_store_keeps_spec_text(db, ctx):
    """A primitive-key store does not use an index spec: it is kept as given
    (README-style is_primitive_key=True plus index_spec keeps working)."""
    spec = make_spec(("a", True))
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "p", t, BtreeOptions("p"), index_spec=spec)
        s.add(ctx, "k", 1)
        assert s._index_spec == json.dumps({"index_fields": [
            {"field_name": "a", "ascending_sort_order": True}]}).encode()
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "p", t, BtreeOptions("p"), index_spec=spec)  # compatible
        assert s.find(ctx, "k")
        assert json.loads(s.get_store_info().index_specification)["index_fields"][0][
            "field_name"] == "a"


def test_store_created_without_metadata(db, ctx):
    """A store made by another client (e.g. C: only the engine's sopdoc spec,
    no JSON metadata) opens with its order and reports its spec as JSON."""
    with db.begin_transaction(ctx) as t:
        raw = t._txn.open_store("c", {"is_primitive_key": False, "is_unique": True,
                                      "index_spec": sop._sop.encode_value([["a", False]])})
        for i in range(3):
            raw.add(ctx, {"a": i, "b": "x"}, i)
    with db.begin_transaction(ctx) as t:
        s = db.open_btree(ctx, "c", t)
        assert [i.key["a"] for i in walk(s, ctx)] == [2, 1, 0]
        assert json.loads(s.get_store_info().index_specification) == {"index_fields": [
            {"field_name": "a", "ascending_sort_order": False}]}
