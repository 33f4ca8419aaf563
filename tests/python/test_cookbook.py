"""Cookbook snippets run verbatim (only the /tmp folders are replaced by a
per-test folder), then their effects are checked in this process and from a
second process."""

import contextlib
import io
import json

import sop
import sop.database

STRUCTURED_DATA = '''
import sop
from sop import btree
import json

# 1. Initialize Database
ctx = sop.Context()
db = sop.Database(sop.DatabaseOptions(stores_folders=["/tmp/sop_data"]))

# 2. Run Transaction
with db.begin_transaction(ctx) as t:
    # Open/Create Store "users"
    # BtreeOptions is optional if you just want default settings.
    # You can pass the name directly to new_btree.
    store = db.new_btree(ctx, "users", t)

    # Add Data
    for i in range(1000):
        user_id = f"user_{i}"
        profile = {
            "name": "John Doe",
            "email": f"john{i}@example.com",
            "active": True
        }
        # SOP stores values as strings (JSON recommended for complex objects)
        # Or use native types if supported by your wrapper version
        store.add(ctx, sop.btree.Item(key=user_id, value=json.dumps(profile)))

    print("Added 1000 users.")
'''

BANK_TRANSFER = '''
import sop
from sop import btree
import json
import uuid

def transfer_funds(ctx, db, from_id, to_id, amount):
    # Start a transaction on the database
    with db.begin_transaction(ctx) as t:
        # Open both stores in the SAME transaction
        # BtreeOptions is optional, name can be passed directly
        accounts = db.new_btree(ctx, "accounts", t)
        logs = db.new_btree(ctx, "logs", t)

        # 1. Deduct from Sender
        if accounts.find(ctx, from_id):
            sender_item = accounts.get_current_item(ctx)
            sender = json.loads(sender_item.value)
            sender["balance"] -= amount
            accounts.update_current_value(ctx, json.dumps(sender))

        # 2. Add to Receiver
        if accounts.find(ctx, to_id):
            receiver_item = accounts.get_current_item(ctx)
            receiver = json.loads(receiver_item.value)
            receiver["balance"] += amount
            accounts.update_current_value(ctx, json.dumps(receiver))

        # 3. Log the Transfer
        log_entry = {
            "action": "transfer",
            "from": from_id,
            "to": to_id,
            "amount": amount
        }
        logs.add(ctx, sop.btree.Item(key=str(uuid.uuid4()), value=json.dumps(log_entry)))

    # Commit happens automatically on exit of 'with' block
    print("Transfer complete.")

# Usage
ctx = sop.Context()
db = sop.Database(sop.DatabaseOptions(stores_folders=["/tmp/sop_data"]))
transfer_funds(ctx, db, "user_1", "user_2", 100)
'''

REMOVE_BTREE = '''
import sop
from sop import btree

# 1. Initialize Database
ctx = sop.Context()
db = sop.Database(sop.DatabaseOptions(stores_folders=["/tmp/sop_data"]))

# 2. Create a store to delete
with db.begin_transaction(ctx) as t:
    bo = btree.BtreeOptions("temp_store")
    store = db.new_btree(ctx, "temp_store", t, bo)
    store.add(ctx, sop.btree.Item(key="foo", value="bar"))
    print("Created 'temp_store' and added data.")

# 3. Remove the store
# Note: RemoveBtree is a database-level operation and does not require an active transaction.
try:
    db.remove_btree(ctx, "temp_store")
    print("Successfully removed 'temp_store'.")
except Exception as e:
    print(f"Failed to remove store: {e}")

# 4. Verify removal
with db.begin_transaction(ctx) as t:
    try:
        store = db.open_btree(ctx, "temp_store", t)
        print("Store still exists (unexpected).")
    except Exception:
        print("Store not found (expected).")
'''

SWARM = '''
import threading
import time
import random
from sop import Context, Database, DatabaseOptions, DatabaseType, Item

def worker(thread_id, db, ctx, items_per_thread):
    retry_count = 0
    committed = False
    while not committed and retry_count < 10:
        try:
            # Each thread starts its own transaction
            # No external locks needed!
            with db.begin_transaction(ctx) as t:
                btree = db.open_btree(ctx, "concurrent_tree", t)            
                for j in range(items_per_thread):
                    # Unique keys per thread -> No conflicts, SOP merges changes
                    key = (thread_id * items_per_thread) + j                
                    btree.add(ctx, Item(key=key, value=f"Thread {thread_id} - Item {j}"))
                # Commit happens here
            committed = True
            print(f"Thread {thread_id} committed.")
        except Exception as e:
            retry_count += 1
            time.sleep(random.random() * 0.5) # Backoff

# Usage
ctx = Context()

# Option A: Standalone (Local disk or shared Network drive, In-Memory Cache) - Good for single-node concurrency
db = Database(DatabaseOptions(stores_folders=["/tmp/sop_swarm"], type=DatabaseType.Standalone))

# Option B: Clustered (Redis Cache) - Required for multi-process/distributed swarm
# db = Database(DatabaseOptions(stores_folders=["/tmp/sop_swarm"], type=DatabaseType.Clustered))

# 1. Pre-seed (Required for Swarm)
with db.begin_transaction(ctx) as t:
    btree = db.new_btree(ctx, "concurrent_tree", t)
    btree.add(ctx, Item(key=-1, value="Root Seed"))

# 2. Launch Threads
threads = []
for i in range(5):
    t = threading.Thread(target=worker, args=(i, db, ctx, 100))
    threads.append(t)
    t.start()

for t in threads:
    t.join()
'''


def run_snippet(code: str, folder: str, tmp_name: str) -> str:
    """exec the snippet with /tmp/<tmp_name> replaced by folder; return stdout."""
    assert f'"/tmp/{tmp_name}"' in code
    code = code.replace(f'"/tmp/{tmp_name}"', json.dumps(folder))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<cookbook {tmp_name}>", "exec"), {"__name__": "__main__"})
    sop.database._close_all()  # let a second process see a closed folder
    return out.getvalue()


def test_structured_data(db_path, subproc):
    out = run_snippet(STRUCTURED_DATA, db_path, "sop_data")
    assert out == "Added 1000 users.\n"
    check = subproc('''
        import json, sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            s = db.open_btree(ctx, "users", t)
            assert s.count() == 1000 and s.is_unique()
            assert s.find(ctx, "user_42")
            v = json.loads(s.get_current_item(ctx).value)
            assert v == {"name": "John Doe", "email": "john42@example.com", "active": True}, v
            s.first(ctx)
            keys = []
            while True:
                page = s.get_keys(ctx, sop.PagingInfo(page_size=300))
                keys += [i.key for i in page]
                if len(page) < 300:
                    break
            assert keys == sorted(f"user_{i}" for i in range(1000))
            print("ok")
        ''', db_path)
    assert check == "ok\n"


def test_bank_transfer(db_path, ctx, subproc):
    db = sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))
    with db.begin_transaction(ctx) as t:
        accounts = db.new_btree(ctx, "accounts", t)
        accounts.add(ctx, sop.Item(key="user_1", value=json.dumps({"balance": 500})))
        accounts.add(ctx, sop.Item(key="user_2", value=json.dumps({"balance": 20})))
    sop.database._close_all()
    out = run_snippet(BANK_TRANSFER, db_path, "sop_data")
    assert out == "Transfer complete.\n"
    check = subproc('''
        import json, sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            a = db.open_btree(ctx, "accounts", t)
            bal = {i.key: json.loads(i.value)["balance"]
                   for i in a.get_values(ctx, [sop.Item("user_1"), sop.Item("user_2")])}
            logs = db.open_btree(ctx, "logs", t)
            assert logs.count() == 1 and logs.first(ctx)
            entry = json.loads(logs.get_current_item(ctx).value)
            print(bal["user_1"], bal["user_2"], entry["amount"], entry["from"], entry["to"])
        ''', db_path)
    assert check == "400 120 100 user_1 user_2\n"


def test_bank_transfer_is_atomic(db_path, ctx):
    """If the transfer fails midway, neither account changes."""
    db = sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))
    with db.begin_transaction(ctx) as t:
        accounts = db.new_btree(ctx, "accounts", t)
        accounts.add(ctx, sop.Item(key="user_1", value=json.dumps({"balance": 500})))
        accounts.add(ctx, sop.Item(key="user_2", value="not json"))
    ns = {}
    exec(BANK_TRANSFER.split("# Usage")[0], ns)
    try:
        ns["transfer_funds"](ctx, db, "user_1", "user_2", 100)
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError("expected the transfer to fail")
    with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
        a = db.open_btree(ctx, "accounts", t)
        assert a.find(ctx, "user_1")
        assert json.loads(a.get_current_item(ctx).value) == {"balance": 500}
        try:
            db.open_btree(ctx, "logs", t)
        except sop.StoreNotFoundError:
            pass
        else:
            raise AssertionError("the logs store should not exist")


def test_remove_btree(db_path, subproc):
    out = run_snippet(REMOVE_BTREE, db_path, "sop_data")
    assert out.splitlines() == [
        "Created 'temp_store' and added data.",
        "Successfully removed 'temp_store'.",
        "Store not found (expected).",
    ]
    check = subproc('''
        import sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx) as t:
            try:
                db.open_btree(ctx, "temp_store", t)
            except sop.StoreNotFoundError:
                print("gone")
        ''', db_path)
    assert check == "gone\n"


def test_swarm_threads(db_path, subproc):
    out = run_snippet(SWARM, db_path, "sop_swarm")
    assert sorted(out.splitlines()) == [f"Thread {i} committed." for i in range(5)]
    check = subproc('''
        import sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            s = db.open_btree(ctx, "concurrent_tree", t)
            assert s.count() == 501, s.count()
            s.first(ctx)
            items = s.get_items(ctx, sop.PagingInfo(page_size=1000))
            assert [i.key for i in items] == list(range(-1, 500))
            assert items[0].value == "Root Seed"
            assert items[1 + 3 * 100 + 7].value == "Thread 3 - Item 7"
            print("ok")
        ''', db_path)
    assert check == "ok\n"
