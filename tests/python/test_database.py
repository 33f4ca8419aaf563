"""Database: construction forms, shared native env per folder, store
management, bad store names and unsupported modes."""

import os

import pytest

import sop
from sop import Item, TransactionMode
from sop.btree import BtreeOptions
from sop.database import DatabaseOptions, DatabaseType, RedisCacheConfig
from sop.transaction import ErasureCodingConfig


def seed(db, ctx, name="s", n=3):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, name, t)
        s.add(ctx, [Item(i, f"v{i}") for i in range(n)])


def assert_intact(db, ctx, name="s", n=3):
    with db.begin_transaction(ctx, TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, name, t)
        assert s.count() == n
        s.first(ctx)
        assert [i.value for i in s.get_items(ctx, sop.PagingInfo(page_size=100))] == [
            f"v{i}" for i in range(n)]


def test_lazy(db_path):
    db = sop.Database(DatabaseOptions(stores_folders=[db_path]))
    assert db.id is None and not os.path.exists(db_path)


def test_construction_forms(db_path, ctx):
    seed(sop.Database(DatabaseOptions(stores_folders=[db_path])), ctx)
    for db in (sop.Database(ctx, storage_path=db_path),
               sop.Database(stores_folders=[db_path]),
               sop.Database(options=DatabaseOptions(stores_folders=[db_path],
                                                    type=DatabaseType.Standalone)),
               sop.ai.Database(DatabaseOptions(stores_folders=[db_path]))):
        assert_intact(db, ctx)
        assert db.id is not None


def test_one_env_per_folder(db_path, ctx, tmp_path):
    a = sop.Database(DatabaseOptions(stores_folders=[db_path]))
    b = sop.Database(DatabaseOptions(stores_folders=[os.path.join(db_path, "..", "db")]))
    a.begin_transaction(ctx).rollback(ctx)
    b.begin_transaction(ctx).rollback(ctx)
    assert a._env is b._env


def test_unknown_store(db, ctx):
    seed(db, ctx)
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreNotFoundError) as ei:
            db.open_btree(ctx, "nope", t)
        assert isinstance(ei.value, LookupError) and isinstance(ei.value, sop.BtreeError)
        # the transaction is still usable (no rollback on a missing store)
        db.open_btree(ctx, "s", t).add(ctx, 3, "v3")
    assert_intact(db, ctx, n=4)


@pytest.mark.parametrize("name", ["a/b", "..", ".", "a\\b", "a\0b", "", "x" * 256, 5, None],
                         ids=repr)
def test_bad_store_names(db, ctx, name):
    seed(db, ctx)
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.InvalidStoreNameError):
            db.new_btree(ctx, name, t)
        with pytest.raises(sop.InvalidStoreNameError):
            db.open_btree(ctx, name, t)
    with pytest.raises(sop.InvalidStoreNameError):
        db.remove_btree(ctx, name)
    assert_intact(db, ctx)
    assert os.listdir(os.path.dirname(db._env.path)) == ["db"]


def test_incompatible_store(db, ctx):
    seed(db, ctx)
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreIncompatibleError):
            db.new_btree(ctx, "s", t, BtreeOptions(is_unique=False, slot_length=8))
    # same options as created (options=None defaults): opens it
    with db.begin_transaction(ctx) as t:
        assert db.new_btree(ctx, "s", t).count() == 3
    assert_intact(db, ctx)


def test_remove_btree(db, ctx):
    seed(db, ctx, "a")
    seed(db, ctx, "b")
    db.remove_btree(ctx, "a")
    db.remove_btree(ctx, "a")  # a missing store is not an error
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "a", t)
    assert_intact(db, ctx, "b")
    assert db._env.list_stores() == ["b"]


@pytest.mark.parametrize("opts", [
    DatabaseOptions(type=DatabaseType.Clustered, stores_folders=["/tmp/x"]),
    DatabaseOptions(type=1, stores_folders=["/tmp/x"]),
    DatabaseOptions(keyspace="tenant_a"),
    DatabaseOptions(stores_folders=["/tmp/x"], redis_config=RedisCacheConfig(url="redis://x")),
    DatabaseOptions(stores_folders=["/tmp/x"],
                    erasure_config={"": ErasureCodingConfig(1, 1, ["/a", "/b"])}),
    DatabaseOptions(stores_folders=["/tmp/x", "/tmp/y"]),
    DatabaseOptions(),
], ids=lambda o: repr(o)[:60])
def test_unsupported_options(ctx, opts):
    db = sop.Database(opts)
    with pytest.raises(sop.InvalidArgumentError) as ei:
        db.begin_transaction(ctx)
    assert "not available" in str(ei.value) or "StoresFolders" in str(ei.value)


def test_bad_transaction_argument(db, ctx):
    with pytest.raises(sop.InvalidArgumentError):
        db.new_btree(ctx, "s", object())


def test_env_level(db, ctx):
    seed(db, ctx)
    env = db._env
    assert env.check() is None
    st = env.stat()
    assert st["stores"] >= 1 and st["commit_seq"] >= 1
    assert env.list_stores() == ["s"]


def test_erasure_config_eq_hash():
    a = ErasureCodingConfig(2, 1, ["/a", "/b"])
    b = ErasureCodingConfig(2, 1, ["/a", "/b"])
    assert a == b and hash(a) == hash(b)
    assert a != ErasureCodingConfig(2, 1, ["/a"])
    assert len({a, b}) == 1


def test_transaction_options_positional():
    from sop import TransactionOptions
    o = TransactionOptions(1, 5, 250)
    assert (o.type, o.erasure_config, o.stores_folders, o.mode, o.max_time) == (1, 5, 250, 1, 0)
