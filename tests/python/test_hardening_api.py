"""Python API hardening (issue 11): folder paths, Database.setup /
get_options, wrong-type arguments, item ids, commit after rollback,
get_current_item without a position, ForReading's documented behaviour,
error messages, type-checker visibility of the error classes, the soak knob
and the demo at 1000 users."""

import ast
import json
import os
import runpy
import shutil
import subprocess
import sys
import threading
import uuid
import zlib

import pytest

import conftest
import sop
import sop.database
from sop import BtreeOptions, DatabaseOptions, Item

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def begin(db, ctx):
    return db.begin_transaction(ctx)


# ---- paths -------------------------------------------------------------------

def test_empty_folder_is_refused_not_the_current_directory(tmp_path, monkeypatch, ctx):
    monkeypatch.chdir(tmp_path)
    for folders in ([""], [b""], ""):
        db = sop.Database(DatabaseOptions(stores_folders=folders))
        with pytest.raises(sop.InvalidArgumentError, match="empty"):
            db.begin_transaction(ctx)
    assert os.listdir(tmp_path) == []  # nothing created in the current directory


@pytest.mark.parametrize("path", ["/tmp/a\0b", b"/tmp/a\0b", "\0"])
def test_nul_in_folder_is_a_sop_error(path, ctx):
    db = sop.Database(DatabaseOptions(stores_folders=[path]))
    with pytest.raises(sop.InvalidArgumentError, match="NUL"):
        db.begin_transaction(ctx)


@pytest.mark.parametrize("folders", [[5], [None], 5, {"a": 1}])
def test_folder_of_a_wrong_type(folders, ctx):
    db = sop.Database(DatabaseOptions(stores_folders=folders))
    with pytest.raises(sop.InvalidArgumentError, match="stores_folders"):
        db.begin_transaction(ctx)


def test_symlink_loop_names_the_loop(tmp_path, ctx):
    a, b = tmp_path / "a", tmp_path / "b"
    os.symlink(b, a)
    os.symlink(a, b)
    db = sop.Database(DatabaseOptions(stores_folders=[str(a)]))
    with pytest.raises(sop.StorageIOError) as ei:
        db.begin_transaction(ctx)
    msg = str(ei.value)
    assert "symbolic link" in msg and "File exists" not in msg


def test_file_in_the_way(tmp_path, ctx):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(sop.StorageIOError, match="not a directory"):
        sop.Database(DatabaseOptions(stores_folders=[str(f)])).begin_transaction(ctx)


# ---- Database(...) forms ------------------------------------------------------

def test_database_from_a_path(db_path, ctx, tmp_path):
    for arg in (db_path, tmp_path / "db"):  # str and os.PathLike
        db = sop.Database(arg)
        with db.begin_transaction(ctx) as t:
            db.new_btree(ctx, "s", t).add(ctx, 1, "one")
        assert db.path == os.path.realpath(db_path)
        sop.database._close_all()


@pytest.mark.parametrize("arg", [5, 3.5, object(), ["/tmp/x"]])
def test_database_of_a_wrong_type(arg):
    with pytest.raises(TypeError, match="DatabaseOptions or a folder path"):
        sop.Database(arg)


def test_database_path_given_twice():
    with pytest.raises(TypeError):
        sop.Database("/tmp/x", storage_path="/tmp/y")


# ---- Database.setup / get_options ---------------------------------------------

def test_setup_then_get_options_then_open(tmp_path, ctx, monkeypatch):
    # the original's setup/get_options examples, with a relative path
    monkeypatch.chdir(tmp_path)
    opts = DatabaseOptions(stores_folders=["data/setup_db"], type=sop.DatabaseType.Standalone,
                           registry_hash_mod=500)
    sop.Database.setup(ctx, opts)
    folder = str(tmp_path / "data" / "setup_db")
    assert opts.stores_folders == [folder]  # made absolute, like the original
    assert os.path.isfile(os.path.join(folder, "sop.options.json"))
    assert [n for n in os.listdir(folder) if n.endswith(".tmp")] == []

    got = sop.Database.get_options(ctx, "data/setup_db")
    assert got == DatabaseOptions(type=sop.DatabaseType.Standalone, stores_folders=[folder],
                                  registry_hash_mod=500)
    db = sop.Database(got)
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, 1, "x")

    # a later Database on the folder uses the saved options
    sop.database._close_all()
    later = sop.Database(DatabaseOptions(stores_folders=[folder]))
    with later.begin_transaction(ctx) as t:
        assert later.open_btree(ctx, "s", t).find(ctx, 1)
    assert later.options.registry_hash_mod == 500


def test_setup_in_a_new_process_reads_back(db_path, ctx, subproc):
    sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path], registry_hash_mod=300))
    out = subproc('''
        import sys, sop
        o = sop.Database.get_options(sop.Context(), sys.argv[1])
        print(o.registry_hash_mod, o.type, o.stores_folders == [sys.argv[1]])
    ''', db_path)
    assert out.split() == ["300", "DatabaseType.Standalone", "True"]


def test_setup_keeps_existing_options(db_path, ctx):
    sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path], registry_hash_mod=300))
    again = DatabaseOptions(stores_folders=[db_path], registry_hash_mod=999)
    assert sop.Database.setup(ctx, again) is again
    assert again.registry_hash_mod == 300
    assert sop.Database.get_options(ctx, db_path).registry_hash_mod == 300


@pytest.mark.concurrency
def test_concurrent_setups_one_file(db_path, ctx):
    results, errors = [], []

    def run(n):
        try:
            o = DatabaseOptions(stores_folders=[db_path], registry_hash_mod=n)
            sop.Database.setup(sop.Context(), o)
            results.append(o.registry_hash_mod)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(250 + i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    saved = sop.Database.get_options(ctx, db_path).registry_hash_mod
    assert results == [saved] * 8  # every caller got the one saved version


def test_get_options_without_setup(db_path, tmp_path, ctx):
    assert sop.Database.get_options(ctx, db_path) is None  # no folder
    assert sop.Database.get_options(ctx, str(tmp_path)) is None  # folder, no file


def _rewrite(folder, change):
    path = os.path.join(folder, "sop.options.json")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(change(data))


@pytest.mark.parametrize("change,err", [
    (lambda d: d[: len(d) // 2], sop.CorruptionError),                      # torn
    (lambda d: d.replace(b"300", b"301"), sop.CorruptionError),             # bit rot
    (lambda d: b"", sop.CorruptionError),
    (lambda d: b"\xff\xfe garbage", sop.CorruptionError),
    (lambda d: b"[1, 2]", sop.CorruptionError),
    (lambda d: d.replace(b'"version": 1', b'"version": 7'), sop.FormatVersionError),
])
def test_damaged_options_file(db_path, ctx, change, err):
    sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path], registry_hash_mod=300))
    _rewrite(db_path, change)
    with pytest.raises(err, match="sop.options.json"):
        sop.Database.get_options(ctx, db_path)
    with pytest.raises(err):
        sop.Database(db_path).begin_transaction(ctx)


def test_options_file_with_wrong_field_types(db_path, ctx):
    sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path]))
    opts = {"type": "0", "stores_folders": [db_path], "registry_hash_mod": -1}
    doc = {"format": "sop.database-options", "version": 1, "options": opts,
           "crc32": zlib.crc32(json.dumps(opts, sort_keys=True,
                                          separators=(",", ":")).encode())}
    _rewrite(db_path, lambda d: json.dumps(doc).encode())
    with pytest.raises(sop.CorruptionError, match="type"):
        sop.Database.get_options(ctx, db_path)


def test_setup_argument_types(ctx, db_path):
    with pytest.raises(TypeError, match="DatabaseOptions"):
        sop.Database.setup(ctx, db_path)
    with pytest.raises(sop.CancelledError):
        sop.Database.setup(None, DatabaseOptions(stores_folders=[db_path]))
    with pytest.raises(sop.InvalidArgumentError, match="registry_hash_mod"):
        sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path], registry_hash_mod="x"))
    with pytest.raises(sop.InvalidArgumentError, match="not available"):
        sop.Database.setup(ctx, DatabaseOptions(stores_folders=[db_path],
                                                type=sop.DatabaseType.Clustered))
    with pytest.raises(sop.InvalidArgumentError, match="empty"):
        sop.Database.setup(ctx, DatabaseOptions(stores_folders=[""]))
    for bad in (5, None, ""):
        with pytest.raises(sop.InvalidArgumentError, match="store_path"):
            sop.Database.get_options(ctx, bad)
    assert not os.path.exists(db_path)  # nothing written by the refused calls


def test_database_options_field_types(ctx, db_path):
    for kw in ({"type": "Standalone"}, {"keyspace": 5}, {"erasure_config": [1]},
               {"redis_config": "redis://x"}, {"registry_hash_mod": 1.5}):
        db = sop.Database(DatabaseOptions(stores_folders=[db_path], **kw))
        with pytest.raises(sop.InvalidArgumentError, match=next(iter(kw))):
            db.begin_transaction(ctx)


# ---- store names and BtreeOptions ---------------------------------------------

@pytest.mark.parametrize("name", [b"abc", 5, None])
def test_store_name_of_a_wrong_type(db, ctx, name):
    t = db.begin_transaction(ctx)
    for call in (lambda: db.new_btree(ctx, name, t, BtreeOptions()),
                 lambda: db.new_btree(ctx, name, t),
                 lambda: db.open_btree(ctx, name, t)):
        with pytest.raises(sop.InvalidStoreNameError, match="str"):
            call()
    db.new_btree(ctx, "ok", t)  # the transaction is still usable
    t.commit()


@pytest.mark.parametrize("kw", [
    {"slot_length": None}, {"slot_length": "500"}, {"slot_length": 5.0},
    {"is_unique": "yes"}, {"is_unique": None}, {"description": 5},
    {"index_specification": 5}, {"cache_config": "fast"}, {"relations": "x"},
    {"relations": [1]}, {"is_primitive_key": 2}, {"leaf_load_balancing": "no"},
    {"cache_config": {"node_cache_duration": object()}},
])
def test_btree_options_of_wrong_types(db, ctx, kw):
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.InvalidArgumentError):
            db.new_btree(ctx, "s", t, BtreeOptions(**kw))
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "s", t)  # nothing was created


def test_new_btree_wrong_option_objects(db, ctx):
    with db.begin_transaction(ctx) as t:
        with pytest.raises(TypeError, match="BtreeOptions"):
            db.new_btree(ctx, "s", t, {"slot_length": 8})
        with pytest.raises(sop.InvalidArgumentError, match="IndexSpecification"):
            db.new_btree(ctx, "s", t, BtreeOptions(), index_spec="name")


# ---- item ids -----------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["not-a-uuid", 5, "", 1.5, ["x"]])
def test_item_with_a_bad_id_is_refused(db, ctx, bad_id):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "s", t)
        for call in (lambda: s.add(ctx, Item(key=1, value="v", id=bad_id)),
                     lambda: s.upsert(ctx, Item(key=1, value="v", id=bad_id)),
                     lambda: s.add(ctx, [Item(key=2, value="w"),
                                         Item(key=1, value="v", id=bad_id)]),
                     lambda: s.update_key(ctx, Item(key=1, id=bad_id))):
            with pytest.raises(sop.InvalidArgumentError, match="UUID"):
                call()
        assert s.count() == 0  # the batch with a bad id wrote nothing


def test_item_with_a_valid_id(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "s", t)
        assert s.add(ctx, Item(key=1, value="a", id=str(uuid.uuid4())))
        assert s.add(ctx, Item(key=2, value="b", id=uuid.uuid4()))
        assert s.add(ctx, Item(key=3, value="c", id=None))
        assert s.count() == 3


# ---- transactions ---------------------------------------------------------------

def test_commit_after_rollback_raises(db, ctx):
    t = db.begin_transaction(ctx)
    db.new_btree(ctx, "s", t).add(ctx, 1, "x")
    t.rollback()
    with pytest.raises(sop.InvalidTransactionStateError, match="rolled back"):
        t.commit()
    with pytest.raises(sop.InvalidTransactionStateError):
        t.commit(ctx)
    t.rollback()  # still idempotent


def test_commit_twice_and_rollback_after_commit_stay_quiet(db, ctx):
    t = db.begin_transaction(ctx)
    db.new_btree(ctx, "s", t)
    t.commit()
    t.commit()
    t.rollback()
    t.commit()


def test_rollback_inside_with_block(db, ctx):
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t)
        t.rollback()
    with db.begin_transaction(ctx) as t:
        with pytest.raises(sop.StoreNotFoundError):
            db.open_btree(ctx, "s", t)


def test_get_current_item_without_a_position(db, ctx):
    with db.begin_transaction(ctx) as t:
        s = db.new_btree(ctx, "s", t)
        with pytest.raises(sop.NoCurrentItemError):
            s.get_current_item(ctx)  # fresh handle
        s.add(ctx, 1, "one")
        assert s.find(ctx, 1) and s.get_current_item(ctx).value == "one"
        assert not s.next(ctx)
        with pytest.raises(sop.NoCurrentItemError, match="find, first or last"):
            s.get_current_item(ctx)  # past the end
        # the original's calls keep the original's answer
        assert s.get_current_key(ctx).key is None
        assert s.get_current_value(ctx) == Item(key=None, value=None,
                                                id="00000000-0000-0000-0000-000000000000")
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading) as t:
        s = db.open_btree(ctx, "s", t)
        assert not s.find(ctx, 7)
        with pytest.raises(sop.NoCurrentItemError):
            s.get_current_item(ctx)


def test_for_reading_is_a_snapshot_as_documented(db, ctx):
    doc = sop.TransactionMode.__doc__
    assert "snapshot" in doc and "commit checks" not in doc
    with db.begin_transaction(ctx) as t:
        db.new_btree(ctx, "s", t).add(ctx, 1, "old")
    reader = db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading)
    rs = db.open_btree(ctx, "s", reader)
    assert rs.find(ctx, 1) and rs.get_current_item(ctx).value == "old"
    with db.begin_transaction(ctx) as t:
        db.open_btree(ctx, "s", t).update(ctx, 1, "new")
    # the reader still sees its snapshot, and its commit does not fail
    assert rs.find(ctx, 1) and rs.get_current_item(ctx).value == "old"
    reader.commit()


def test_timeout_message_says_it_once(db, ctx):
    t = db.begin_transaction(ctx, max_time=0.0001)
    s = db.new_btree(ctx, "s", t)
    threading.Event().wait(0.05)
    with pytest.raises(sop.TransactionTimeoutError) as ei:
        for i in range(300):  # the deadline is checked every 256 operations
            s.add(ctx, i, i)
        t.commit()
    msg = str(ei.value)
    assert msg.count("exceeded its max_time") == 1, msg


def test_ended_transaction_message(db, ctx):
    t = db.begin_transaction(ctx)
    s = db.new_btree(ctx, "s", t)
    t.commit()
    with pytest.raises(sop.InvalidTransactionStateError) as ei:
        s.add(ctx, 1, 1)
    assert str(ei.value) == "transaction has already ended: it was committed or rolled back"


# ---- type checkers -------------------------------------------------------------

def test_error_classes_are_named_in_the_package():
    """Every class of the engine's error table is imported by name in
    sop/__init__.py and declared in the stub, so type checkers see them."""
    pkg = os.path.dirname(sop.__file__)
    with open(os.path.join(pkg, "__init__.py")) as f:
        tree = ast.parse(f.read())
    named = {a.asname or a.name for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == "_sop"
             for a in node.names}
    assert set(sop.ERROR_CLASSES) <= named
    with open(os.path.join(pkg, "_sop.pyi")) as f:
        stub = f.read()
    for name in sop.ERROR_CLASSES:
        assert f"class {name}(" in stub, name


def _mypy_env():
    """mypy finds an installed sop (py.typed) by itself and refuses a
    site-packages folder in MYPYPATH; a staged build is named there."""
    import site
    import sysconfig
    env = dict(os.environ)
    parent = os.path.realpath(os.path.dirname(os.path.dirname(sop.__file__)))
    installed = {os.path.realpath(p) for p in
                 [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                  *site.getsitepackages(), site.getusersitepackages()]}
    if parent in installed:
        env.pop("MYPYPATH", None)
    else:
        env["MYPYPATH"] = parent
    return env


def test_mypy_sees_the_error_classes(tmp_path):
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import sop\n"
        "def f() -> None:\n"
        "    try:\n"
        "        pass\n"
        "    except sop.ConflictError as e:\n"
        "        code: 'int | None' = e.code\n"
        "    except (sop.StoreNotFoundError, sop.InvalidTransactionStateError):\n"
        "        pass\n"
        "    raise sop.TransactionTimeoutError('x')\n")
    env = _mypy_env()
    res = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                          "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"),
                          str(snippet)], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_checks_the_package_clean(tmp_path):
    """The package's annotations agree with the stub (a type error in them
    would surface in users' type checks of the calls they make)."""
    pytest.importorskip("mypy")
    env = _mypy_env()
    res = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                          "--cache-dir", str(tmp_path / "cache"), "-p", "sop"],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


# ---- soak knob, set-up, demo -------------------------------------------------------

def test_soak_knob_scales_the_long_tests(monkeypatch):
    import test_model
    monkeypatch.delenv("SOP_MODEL_OPS", raising=False)
    monkeypatch.setattr(conftest, "SOAK", False)
    normal = test_model.total_ops()
    monkeypatch.setattr(conftest, "SOAK", True)
    assert test_model.total_ops() == 10 * normal
    with open(os.path.join(HERE, "test_multiprocess.py")) as f:
        assert "soak_scale(" in f.read()

    class FakeItem:
        def __init__(self, *marks):
            self.keywords = dict.fromkeys(marks)
            self.added = []

        def add_marker(self, m):
            self.added.append(m)

    for soak in (False, True):
        monkeypatch.setattr(conftest, "SOAK", soak)
        items = [FakeItem("soak", "concurrency"), FakeItem("concurrency")]
        conftest.pytest_collection_modifyitems(None, items)
        assert [len(i.added) for i in items] == ([0, 0] if soak else [1, 0])


def test_setup_script_installs_the_test_tools():
    with open(os.path.join(ROOT, "scripts", "setup.sh")) as f:
        text = f.read()
    line = next(ln for ln in text.splitlines() if ln.startswith("PIP_PACKAGES="))
    assert "hypothesis" in line and "mypy" in line


def test_demo_with_1000_users(monkeypatch, capsys):
    demo = runpy.run_path(os.path.join(ROOT, "examples", "demo.py"))
    assert demo["main"](["--users", "1000"]) == 0
    assert "demo ok" in capsys.readouterr().out
