"""The main job: an embedded SOP database, two stores, one transaction.

Creates a database in a temporary folder, then:
  1. adds users and their accounts to two stores in ONE transaction;
  2. transfers funds between two accounts and logs the transfer, again in one
     transaction over two stores (cookbook section 2);
  3. shows that a transaction that raises leaves nothing behind;
  4. reads everything back in a read-only transaction: point lookups, a
     page-by-page scan, and the log.
It checks its own results and exits non-zero if anything is off.

    python examples/demo.py [--keep] [--users N]

--keep leaves the database folder in place (its path is printed).
"""

import argparse
import json
import shutil
import sys
import tempfile
import uuid

import sop
from sop import btree

PAGE_SIZE = 20
START_BALANCE = 1000


def user_key(i, n_users):
    # Zero-padded to the width of the largest number, so that string order
    # is numeric order.
    return f"user_{i:0{max(3, len(str(n_users)))}d}"


def load(ctx, db, n_users):
    """Step 1: users and accounts, two stores, one transaction."""
    with db.begin_transaction(ctx) as t:
        users = db.new_btree(ctx, "users", t)
        accounts = db.new_btree(ctx, "accounts", t)
        for i in range(1, n_users + 1):
            profile = {"name": f"User {i}", "email": f"user{i}@example.com", "active": i % 7 != 0}
            users.add(ctx, btree.Item(key=user_key(i, n_users), value=json.dumps(profile)))
            accounts.add(ctx, btree.Item(key=user_key(i, n_users), value=json.dumps({"balance": START_BALANCE})))
    print(f"1. added {n_users} users and {n_users} accounts in one transaction")


def transfer_funds(ctx, db, from_id, to_id, amount):
    """Step 2 (cookbook section 2): debit, credit and log, all or nothing."""
    with db.begin_transaction(ctx) as t:
        accounts = db.new_btree(ctx, "accounts", t)
        logs = db.new_btree(ctx, "logs", t)

        if not accounts.find(ctx, from_id):
            raise KeyError(from_id)
        sender = json.loads(accounts.get_current_item(ctx).value)
        sender["balance"] -= amount
        accounts.update_current_value(ctx, json.dumps(sender))

        if not accounts.find(ctx, to_id):
            raise KeyError(to_id)
        receiver = json.loads(accounts.get_current_item(ctx).value)
        receiver["balance"] += amount
        accounts.update_current_value(ctx, json.dumps(receiver))

        entry = {"action": "transfer", "from": from_id, "to": to_id, "amount": amount}
        logs.add(ctx, btree.Item(key=str(uuid.uuid4()), value=json.dumps(entry)))
    print(f"2. transferred {amount} from {from_id} to {to_id} (accounts + logs, one transaction)")


def failed_transfer(ctx, db, from_id, to_id, amount):
    """Step 3: an exception inside the block rolls everything back."""
    try:
        with db.begin_transaction(ctx) as t:
            accounts = db.new_btree(ctx, "accounts", t)
            logs = db.new_btree(ctx, "logs", t)
            accounts.find(ctx, from_id)
            sender = json.loads(accounts.get_current_item(ctx).value)
            sender["balance"] -= amount
            accounts.update_current_value(ctx, json.dumps(sender))
            logs.add(ctx, btree.Item(key=str(uuid.uuid4()), value=json.dumps({"action": "doomed"})))
            raise RuntimeError("receiver's bank is closed")
    except RuntimeError as e:
        print(f"3. transfer of {amount} from {from_id} failed ({e}): rolled back")


def read_back(ctx, db, n_users):
    """Step 4: read-only transaction over the three stores."""
    errors = []
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t:
        users = db.open_btree(ctx, "users", t)
        accounts = db.open_btree(ctx, "accounts", t)
        logs = db.open_btree(ctx, "logs", t)
        print(f"4. stores: users={users.count()} accounts={accounts.count()} logs={logs.count()}")

        balances = {}
        for key in (user_key(1, n_users), user_key(2, n_users), user_key(3, n_users)):
            if not accounts.find(ctx, key):
                errors.append(f"{key} not found")
                continue
            balances[key] = json.loads(accounts.get_current_item(ctx).value)["balance"]
            print(f"   {key}: balance {balances[key]}")
        want = {user_key(1, n_users): START_BALANCE - 100,
                user_key(2, n_users): START_BALANCE + 100,
                user_key(3, n_users): START_BALANCE}
        if balances != want:
            errors.append(f"balances {balances}, want {want}")

        # Page through the users, PAGE_SIZE at a time, from the first one.
        seen = []
        if users.first(ctx):
            page_no = 0
            while len(seen) < n_users:
                page = users.get_items(ctx, sop.PagingInfo(page_size=PAGE_SIZE))
                if not page:
                    break
                page_no += 1
                seen.extend(item.key for item in page)
                first, last = page[0], page[-1]
                if page_no <= 5:
                    print(f"   users page {page_no}: {len(page)} items, {first.key} .. {last.key} "
                          f"(first: {json.loads(first.value)['name']})")
                if len(page) < PAGE_SIZE:
                    break
            if page_no > 5:
                print(f"   ... {page_no} pages of users in all, {len(seen)} users")
        if seen != [user_key(i, n_users) for i in range(1, n_users + 1)]:
            errors.append(f"paging returned {len(seen)} users, not {n_users} in order")

        log_items = logs.get_items(ctx, sop.PagingInfo(page_size=10)) if logs.first(ctx) else []
        for item in log_items:
            print(f"   log {item.key[:8]}: {item.value}")
        if [json.loads(i.value)["action"] for i in log_items] != ["transfer"]:
            errors.append(f"expected one transfer in the log, got {len(log_items)} entries")
    return errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the database folder")
    parser.add_argument("--users", type=int, default=50, help="number of users (default 50)")
    args = parser.parse_args(argv)
    if args.users < 3:
        parser.error("--users must be at least 3")

    folder = tempfile.mkdtemp(prefix="sop-demo-")
    print(f"SOP {getattr(sop, '__version__', '?')}: database in {folder}")
    try:
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[folder]))
        load(ctx, db, args.users)
        n = args.users
        transfer_funds(ctx, db, user_key(1, n), user_key(2, n), 100)
        failed_transfer(ctx, db, user_key(3, n), user_key(4, n), 50)
        errors = read_back(ctx, db, args.users)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print("demo ok" if not errors else "demo FAILED")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
