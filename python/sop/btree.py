"""B-tree stores: options, paging, items and the Btree class.

Btree subclasses the native sop._sop.Store (one B-tree opened in a
transaction, with one cursor); every data method (add, find, get_items, ...)
is implemented in C.  This module adds the option dataclasses of the original
package and turns the engine's store record into a BtreeOptions.

Complex keys (BtreeOptions.is_primitive_key=False): keys are dicts or
dataclass instances, returned as dicts.  An IndexSpecification chooses the
key fields, their order and direction; it is kept with the store (the engine
holds it as a sopdoc list of [field_name, ascending] pairs, the JSON text
stays in the store's metadata for get_store_info), so a reader needs no spec.
Without one, every field is a key field, ascending, in field-name order.
Other fields ride along: stored and returned, ignored for order and
uniqueness; update_key / update_current_key may change them
(KeyChangedError if an indexed field would change).  Key field values are
None, bool, int (64-bit), float, str or bytes, ordered
None < bool < number < str < bytes (numbers by exact value; descending
fields reversed).  find / get_values accept the leading indexed fields only
(a prefix): the cursor lands on the first item of that range.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, Dict, Generic, List, Optional, TypeVar

from . import _sop
from ._sop import BtreeError

__all__ = [
    "ValueDataSize",
    "PagingDirection",
    "PagingInfo",
    "CacheConfig",
    "IndexFieldSpecification",
    "IndexSpecification",
    "Relation",
    "BtreeOptions",
    "Item",
    "BtreeError",
    "Btree",
    "TK",
    "TV",
]

TK = TypeVar("TK")
TV = TypeVar("TV")

NIL_UUID = "00000000-0000-0000-0000-000000000000"


class ValueDataSize(Enum):
    """Where values live: Small in the leaf node, Medium/Big as separate blobs."""

    Small = 0
    Medium = 1
    Big = 2


class PagingDirection(Enum):
    Forward = 0
    Backward = 1


@dataclass
class PagingInfo:
    """Paging of get_keys/get_items.

    Skips page_offset * page_size items from the cursor, then returns
    fetch_count items (page_size when fetch_count is 0).  direction is an int
    (PagingDirection.X.value); a PagingDirection member is accepted too.
    """

    page_offset: int = 0
    page_size: int = 20
    fetch_count: int = 0
    direction: int = PagingDirection.Forward.value


@dataclass
class CacheConfig:
    """Cache durations in minutes (kept with the store's metadata)."""

    registry_cache_duration: int = 10
    is_registry_cache_ttl: bool = False
    node_cache_duration: int = 5
    is_node_cache_ttl: bool = False
    store_info_cache_duration: int = 5
    is_store_info_cache_ttl: bool = False
    value_data_cache_duration: int = 0
    is_value_data_cache_ttl: bool = False


@dataclass
class IndexFieldSpecification:
    field_name: str
    ascending_sort_order: bool = True


@dataclass
class IndexSpecification:
    index_fields: Optional[List[IndexFieldSpecification]] = None  # a tuple works too


@dataclass
class Relation:
    """A foreign-key style link from fields of this store to another store."""

    source_fields: List[str]
    target_store: str
    target_fields: List[str]


@dataclass
class BtreeOptions:
    name: str = ""
    is_unique: bool = False
    slot_length: int = 500
    description: str = ""
    is_value_data_in_node_segment: bool = True
    is_value_data_actively_persisted: bool = False
    is_value_data_globally_cached: bool = False
    index_specification: str = ""
    transaction_id: str = NIL_UUID
    cache_config: Optional[CacheConfig] = None
    is_primitive_key: bool = True
    leaf_load_balancing: bool = False
    relations: Optional[List[Relation]] = None

    def set_index_specification(self, spec: IndexSpecification) -> None:
        """Store spec as JSON (no-op when spec is falsy)."""
        if spec:
            self.index_specification = json.dumps(asdict(spec))

    def set_value_data_size(self, s: ValueDataSize) -> None:
        """Medium: separate, cached blobs; Big: separate, persisted, not cached.
        Small leaves the flags as they are (like the original)."""
        if s == ValueDataSize.Medium:
            self.is_value_data_in_node_segment = False
            self.is_value_data_globally_cached = True
            self.is_value_data_actively_persisted = False
        elif s == ValueDataSize.Big:
            self.is_value_data_in_node_segment = False
            self.is_value_data_globally_cached = False
            self.is_value_data_actively_persisted = True


# Items have __slots__ where dataclasses support them (Python 3.10+): they
# are smaller, and the extension builds and reads them without a dict.
_item_dataclass = dataclass(slots=True) if sys.version_info >= (3, 10) else dataclass


@_item_dataclass
class Item(Generic[TK, TV]):
    """One B-tree item; id is the canonical UUID text of the item id."""

    key: TK
    value: Optional[TV] = None
    id: str = NIL_UUID


_sop._register(Item=Item)


# ---- options <-> engine ------------------------------------------------------

def _normalize_slot_length(n: int) -> int:
    # The original's rules: <= 0 -> 2000, odd -> minus one, clamped to 2..20000.
    n = int(n)
    if n <= 0:
        n = 2000
    if n % 2:
        n -= 1
    return max(2, min(20000, n))


def _value_placement(o: BtreeOptions) -> int:
    if o.is_value_data_in_node_segment:
        return _sop.VALUE_SMALL
    if o.is_value_data_globally_cached:
        return _sop.VALUE_MEDIUM
    return _sop.VALUE_BIG


def _jsonable(o: Any) -> Any:
    if is_dataclass(o) and not isinstance(o, type):
        return {f.name: _jsonable(getattr(o, f.name)) for f in fields(o)}
    if isinstance(o, (list, tuple)):
        return [_jsonable(x) for x in o]
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, Enum):
        return o.value
    return o


def _bad_spec(msg: str) -> None:
    _sop.raise_error(_sop.SOP_INVALID, msg)


def _spec_pairs(spec: Any) -> Optional[List[List[Any]]]:
    """The [[field_name, ascending], ...] pairs of an index specification
    given as an IndexSpecification, its dict form or its JSON text; None when
    the text is not an IndexSpecification (e.g. a CEL expression)."""
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except ValueError:
            return None
    if isinstance(spec, IndexSpecification):
        spec = {"index_fields": spec.index_fields}
    if not isinstance(spec, dict) or set(spec) - {"index_fields"}:
        return None
    fields_ = spec.get("index_fields") or ()
    if not isinstance(fields_, (list, tuple)):
        return None
    pairs: List[List[Any]] = []
    for f in fields_:
        if isinstance(f, IndexFieldSpecification):
            name, asc = f.field_name, f.ascending_sort_order
        elif isinstance(f, dict) and "field_name" in f:
            name, asc = f["field_name"], f.get("ascending_sort_order", True)
        else:
            _bad_spec(f"index field {f!r} is not an IndexFieldSpecification")
        if not isinstance(name, str) or not name:
            _bad_spec(f"index field names are non-empty str, not {name!r}")
        if not isinstance(asc, (bool, int)):
            _bad_spec(f"ascending_sort_order of {name!r} must be a bool, not {asc!r}")
        if any(p[0] == name for p in pairs):
            _bad_spec(f"index field {name!r} is listed twice")
        pairs.append([name, bool(asc)])
    return pairs


def _engine_index_spec(o: BtreeOptions) -> bytes:
    """The index spec kept by the engine.  Complex-key stores: a sopdoc list
    of [name, ascending] pairs (see sop.h; the extension builds keys with
    it), b"" for none.  The JSON text stays in the metadata either way."""
    text = o.index_specification or ""
    if not text:
        return b""
    if o.is_primitive_key:
        # primitive keys do not use it: keep the text as given (as earlier
        # versions did, so their stores stay compatible)
        return text.encode("utf-8") if isinstance(text, str) else bytes(text)
    pairs = _spec_pairs(text)
    if pairs is None:
        _bad_spec("index_specification must be the JSON of an IndexSpecification "
                  "(CEL expressions are not supported)")
    return _sop.encode_value(pairs) if pairs else b""


_BOOL_FIELDS = ("is_unique", "is_value_data_in_node_segment", "is_value_data_actively_persisted",
                "is_value_data_globally_cached", "is_primitive_key", "leaf_load_balancing")


def _check_options(o: BtreeOptions) -> None:
    """Type checks of BtreeOptions fields (InvalidArgumentError naming the
    field) before they reach the engine or json."""
    def bad(field_: str, want: str) -> None:
        _bad_spec(f"BtreeOptions.{field_} must be {want}, not {getattr(o, field_)!r}")

    if isinstance(o.slot_length, bool) or not isinstance(o.slot_length, int):
        bad("slot_length", "an int")
    for f in _BOOL_FIELDS:
        v = getattr(o, f)
        if not isinstance(v, bool) and not (isinstance(v, int) and v in (0, 1)):
            bad(f, "a bool")
    if o.description is not None and not isinstance(o.description, str):
        bad("description", "a str")
    if o.index_specification is not None and not isinstance(o.index_specification, str):
        bad("index_specification", "a str (the JSON of an IndexSpecification)")
    if o.cache_config is not None and not isinstance(o.cache_config, (CacheConfig, dict)):
        bad("cache_config", "a CacheConfig or None")
    if o.relations is not None and (not isinstance(o.relations, (list, tuple)) or not all(
            isinstance(r, (Relation, dict)) for r in o.relations)):
        bad("relations", "a list of Relation or None")


def _create_options(o: BtreeOptions) -> Dict[str, Any]:
    """The dict Txn.open_store() takes to create a store from BtreeOptions."""
    _check_options(o)
    meta = _jsonable(o)
    meta.pop("transaction_id", None)
    try:
        metadata = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as e:
        _bad_spec(f"BtreeOptions cannot be kept with the store: {e}")
    return {
        "slot_length": _normalize_slot_length(o.slot_length),
        "is_unique": bool(o.is_unique),
        "value_placement": _value_placement(o),
        "leaf_load_balancing": bool(o.leaf_load_balancing),
        "is_primitive_key": bool(o.is_primitive_key),
        "description": o.description or "",
        "index_spec": _engine_index_spec(o),
        "metadata": metadata,
    }


def _spec_json(raw: bytes) -> str:
    """JSON text of an engine index spec (for stores created without the
    metadata new_btree writes, e.g. from C)."""
    if not raw:
        return ""
    try:
        pairs = _sop.decode_value(raw)
        return json.dumps({"index_fields": [
            {"field_name": n, "ascending_sort_order": bool(a)} for n, a in pairs]})
    except Exception:
        return raw.decode("utf-8", "replace")


def _options_from_info(info: Dict[str, Any], transaction_id: str) -> BtreeOptions:
    """Rebuild BtreeOptions from the engine's store record and the metadata
    JSON written by new_btree (engine fields win where both exist)."""
    meta: Dict[str, Any] = {}
    raw = info.get("metadata") or b""
    if raw:
        try:
            meta = json.loads(raw.decode("utf-8"))
            if not isinstance(meta, dict):
                meta = {}
        except (ValueError, UnicodeDecodeError):
            meta = {}
    known = {f.name for f in fields(BtreeOptions)}
    opts = BtreeOptions(**{k: v for k, v in meta.items() if k in known})
    opts.name = info["name"]
    opts.slot_length = info["slot_length"]
    opts.is_unique = info["is_unique"]
    opts.leaf_load_balancing = info["leaf_load_balancing"]
    opts.is_primitive_key = info["is_primitive_key"]
    opts.description = info.get("description") or opts.description
    if "index_specification" not in meta:
        opts.index_specification = _spec_json(info.get("index_spec") or b"")
    placement = info["value_placement"]
    opts.is_value_data_in_node_segment = placement == _sop.VALUE_SMALL
    opts.is_value_data_globally_cached = placement == _sop.VALUE_MEDIUM
    opts.is_value_data_actively_persisted = placement == _sop.VALUE_BIG
    if isinstance(opts.cache_config, dict):
        cc_fields = {f.name for f in fields(CacheConfig)}
        opts.cache_config = CacheConfig(
            **{k: v for k, v in opts.cache_config.items() if k in cc_fields})
    if isinstance(opts.relations, list):
        opts.relations = [Relation(**r) if isinstance(r, dict) else r for r in opts.relations]
    opts.transaction_id = transaction_id
    return opts


class Btree(_sop.Store, Generic[TK, TV]):
    """A B-tree store opened in a transaction.

    Obtain one with Database.new_btree / Database.open_btree (or the
    Btree.new / Btree.open class methods).  Attributes: ``id`` (a uuid.UUID
    minted for every open), ``transaction_id``, ``is_primitive_key``.
    """

    # Set by _attach(); class-level defaults keep repr/attribute access safe.
    id: Optional[uuid.UUID] = None
    transaction_id: Optional[uuid.UUID] = None

    def _attach(self, trans: Any) -> "Btree":
        self.id = uuid.uuid4()
        self.transaction_id = getattr(trans, "transaction_id", None)
        return self

    @classmethod
    def new(cls, ctx, name: str, trans, options: Optional[BtreeOptions] = None,
            index_spec: Optional[IndexSpecification] = None) -> "Btree":
        """Create the store, or open it if it exists with a compatible config."""
        from .database import _new_btree
        return _new_btree(ctx, name, trans, options, index_spec, cls)

    @classmethod
    def open(cls, ctx, name: str, trans) -> "Btree":
        """Open an existing store (StoreNotFoundError if there is none)."""
        from .database import _open_btree
        return _open_btree(ctx, name, trans, cls)

    def get_store_info(self) -> BtreeOptions:  # type: ignore[override]
        """The store's options (including description, relations, cache
        config) and, in the native record, its item count."""
        info = _sop.Store.get_store_info(self)
        tid = str(self.transaction_id) if self.transaction_id else NIL_UUID
        return _options_from_info(info, tid)

    def __repr__(self) -> str:
        return f"<Btree {self.name!r}{' (transaction ended)' if self.ended else ''}>"
