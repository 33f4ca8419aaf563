"""Package surface: exports, Context, Logger."""

import logging

import pytest

import sop


def test_exports():
    from sop import Context, Database, DatabaseOptions, DatabaseType, Item  # cookbook form
    from sop import (Btree, BtreeOptions, LogLevel, Logger, PagingDirection, PagingInfo,
                     Transaction, TransactionMode, TransactionOptions, ValueDataSize)
    from sop.database import (Database as D2, DatabaseOptions as DO2, DatabaseType as DT2,
                              RedisCacheConfig, IndexSpecification)
    from sop.ai import Database as AIDatabase, DatabaseType as DT3
    from sop.btree import (BtreeError, CacheConfig, IndexFieldSpecification, Relation, TK, TV)
    from sop.transaction import (MIN_HASH_MOD_VALUE, MAX_HASH_MOD_VALUE, ErasureCodingConfig,
                                 InvalidTransactionStateError, TransactionError)
    assert D2 is Database and DO2 is DatabaseOptions and DT2 is DatabaseType is DT3
    assert issubclass(AIDatabase, Database) and AIDatabase is not Database
    assert Item is sop.btree.Item and issubclass(Btree, sop._sop.Store)
    assert (MIN_HASH_MOD_VALUE, MAX_HASH_MOD_VALUE) == (250, 750000)
    assert isinstance(sop.__version__, str)
    for name in sop.__all__:
        assert hasattr(sop, name), name
    for mod in ("btree", "context", "database", "transaction", "logger", "ai"):
        assert hasattr(sop, mod)


def test_enums_and_defaults():
    assert [m.value for m in sop.TransactionMode] == [0, 1, 2]
    assert [m.value for m in sop.DatabaseType] == [0, 1]
    assert [m.value for m in sop.ValueDataSize] == [0, 1, 2]
    assert [m.value for m in sop.LogLevel] == [0, 1, 2, 3]
    assert sop.PagingInfo() == sop.PagingInfo(0, 20, 0, 0)
    o = sop.BtreeOptions()
    assert (o.is_unique, o.slot_length, o.is_primitive_key) == (False, 500, True)
    assert sop.Item(1) == sop.Item(1, None, "00000000-0000-0000-0000-000000000000")


def test_btree_options_helpers():
    from sop.btree import IndexFieldSpecification, IndexSpecification
    o = sop.BtreeOptions()
    o.set_value_data_size(sop.ValueDataSize.Medium)
    assert (o.is_value_data_in_node_segment, o.is_value_data_globally_cached,
            o.is_value_data_actively_persisted) == (False, True, False)
    o.set_value_data_size(sop.ValueDataSize.Small)  # no-op, like the original
    assert o.is_value_data_globally_cached
    o.set_value_data_size(sop.ValueDataSize.Big)
    assert (o.is_value_data_in_node_segment, o.is_value_data_globally_cached,
            o.is_value_data_actively_persisted) == (False, False, True)
    o.set_index_specification(None)
    assert o.index_specification == ""
    o.set_index_specification(IndexSpecification((IndexFieldSpecification("a", False),)))
    assert o.index_specification == (
        '{"index_fields": [{"field_name": "a", "ascending_sort_order": false}]}')


def test_context():
    a, b = sop.Context(), sop.Context()
    assert b.id > a.id >= 1
    assert a.error() is None and a.is_valid()
    a.cancel()
    assert a.error() is not None and not a.is_valid()


def test_logger_file(tmp_path, db, ctx):
    path = tmp_path / "sop.log"
    sop.Logger.configure(sop.LogLevel.Debug, str(path))
    try:
        with db.begin_transaction(ctx) as t:
            db.new_btree(ctx, "s", t).add(ctx, 1, 1)
        logging.getLogger("sop").info("hello")
    finally:
        sop.Logger.configure(sop.LogLevel.Error)
    text = path.read_text()
    assert "hello" in text and "commit transaction" in text


def test_logger_bad_path(tmp_path):
    with pytest.raises(sop.StorageIOError) as ei:
        sop.Logger.configure(sop.LogLevel.Info, str(tmp_path / "no" / "such" / "dir.log"))
    assert isinstance(ei.value, OSError)
    assert "dir.log" in str(ei.value)
    sop.Logger.configure(sop.LogLevel.Error)
