"""Cookbook sections on complex keys run verbatim: 3 (Complex Keys &
Indexing), 4 (Metadata-Carrying Keys, with its "Querying Metadata Only"
block), 5 (Simplified Lookup with dictionary keys) and "Modeling Relations"
(logical relations and a many-to-many link store).  Only the /tmp folders
are replaced by a per-test folder; where a snippet uses ctx/db/t without
creating them, the minimal set-up is added around it (RELATIONS_SETUP).
Their printed output is checked, then their effects, also from a second
process."""


import sop
import sop.database

from test_cookbook import run_snippet

COMPLEX_KEYS = '''
from dataclasses import dataclass
from sop import Context, BtreeOptions, Item, ValueDataSize, PagingInfo
from sop.btree import IndexSpecification, IndexFieldSpecification
from sop.ai import Database, DatabaseType
from sop.database import DatabaseOptions

# 1. Define Key Structure (Region -> Dept -> ID)
@dataclass
class UserKey:
    region: str
    department: str
    employee_id: int

# 2. Define Value Structure
@dataclass
class UserProfile:
    name: str
    role: str

ctx = Context()
db = Database(DatabaseOptions(stores_folders=["/tmp/sop_complex_db"], type=DatabaseType.Standalone))

with db.begin_transaction(ctx) as t:
    # Configure B-Tree for Complex Keys
    bo = BtreeOptions("employees", is_unique=True)
    bo.is_primitive_key = False 
    bo.set_value_data_size(ValueDataSize.Small)

    # Define Index Hierarchy: Region -> Department -> EmployeeID
    idx_spec = IndexSpecification(
        index_fields=(
            IndexFieldSpecification("region", ascending_sort_order=True),
            IndexFieldSpecification("department", ascending_sort_order=True),
            IndexFieldSpecification("employee_id", ascending_sort_order=True),
        )
    )

    store = db.new_btree(ctx, "employees", t, options=bo, index_spec=idx_spec)

    # Add Data
    k1 = UserKey(region="US", department="Eng", employee_id=101)
    store.add(ctx, Item(key=k1, value=UserProfile(name="Alice", role="Dev")))
    
    k2 = UserKey(region="US", department="Sales", employee_id=202)
    store.add(ctx, Item(key=k2, value=UserProfile(name="Bob", role="Manager")))

    print("Added users.")

# Querying
with db.begin_transaction(ctx) as t:
    store = db.open_btree(ctx, "employees", t)

    # Range Scan: Find all "US" employees
    # Since 'region' is the first index field, we can scan efficiently.
    if store.first(ctx):
        items = store.get_items(ctx, PagingInfo(page_size=100))
        for item in items:
            if item.key['region'] == "US":
                print(f"Found: {item.value['name']} in {item.key['department']}")
'''

METADATA_KEYS = '''
from dataclasses import dataclass
import time
from sop import Context, BtreeOptions, Item, ValueDataSize, PagingInfo
from sop.btree import IndexSpecification, IndexFieldSpecification
from sop.ai import Database, DatabaseType
from sop.database import DatabaseOptions

# 1. Define Key with "Ride-On" Metadata
# Only 'doc_id' is indexed. 'is_deleted' rides along.
@dataclass
class DocKey:
    doc_id: int
    is_deleted: bool = False
    timestamp: int = 0

ctx = Context()
db = Database(DatabaseOptions(stores_folders=["/tmp/sop_meta_db"], type=DatabaseType.Standalone))

with db.begin_transaction(ctx) as t:
    bo = BtreeOptions("documents", is_unique=True)
    bo.is_primitive_key = False
    # Use Big values (implies we want to avoid fetching them unless necessary)
    bo.set_value_data_size(ValueDataSize.Big)

    # Index ONLY on doc_id
    idx_spec = IndexSpecification(
        index_fields=(
            IndexFieldSpecification("doc_id", ascending_sort_order=True),
        )
    )
    store = db.new_btree(ctx, "documents", t, options=bo, index_spec=idx_spec)

    # Add Data
    k1 = DocKey(doc_id=100, is_deleted=False, timestamp=int(time.time()))
    store.add(ctx, Item(key=k1, value="Large Content A..."))

    k2 = DocKey(doc_id=101, is_deleted=True, timestamp=int(time.time()))
    store.add(ctx, Item(key=k2, value="Large Content B..."))
'''

QUERYING_METADATA_ONLY = '''
# Querying Metadata Only
with db.begin_transaction(ctx) as t:
    store = db.open_btree(ctx, "documents", t)
    if store.first(ctx):
        # get_keys fetches ONLY the keys. Values remain on disk.
        keys = store.get_keys(ctx, PagingInfo(page_size=100))
        
        for item in keys:
            status = "[DELETED]" if item.key['is_deleted'] else "[ACTIVE]"
            print(f"Doc {item.key['doc_id']}: {status}")
'''

SIMPLIFIED_LOOKUP = '''
import sop
from sop import Context, Item
from sop.ai import Database, DatabaseType
from sop.database import DatabaseOptions

# Initialize Context
ctx = Context()
db = Database(DatabaseOptions(stores_folders=["/tmp/sop_complex_db"], type=DatabaseType.Standalone))

with db.begin_transaction(ctx) as t:
    # Open existing B-Tree
    # Note: No IndexSpecification needed here; it's loaded from the store's metadata.
    store = db.open_btree(ctx, "employees", t)

    # Search using a plain dictionary
    # The dictionary keys must match the field names defined in the IndexSpecification.
    search_key = {
        "region": "US", 
        "department": "Sales", 
        "employee_id": 202
    }
    
    if store.find(ctx, search_key):
        # Fetch the value
        # We pass the same dict as the key to get_values
        items = store.get_values(ctx, Item(key=search_key))
        if items:
            # The value is returned as a dict (since we didn't provide a dataclass)
            user_profile = items[0].value
            print(f"Found: {user_profile['name']}")
'''

LOGICAL_RELATIONS = '''
from sop.btree import BtreeOptions, Relation

# Register: 'orders.user_id' -> 'users.id'
opts = BtreeOptions(
    relations=[
        Relation(
            source_fields=["user_id"],
            target_store="users",
            target_fields=["id"]
        )
    ]
)
order_store = db.new_btree(ctx, "orders", t, options=opts)
'''

LINK_STORE = '''
# Create the Link Store for M:N mapping
with db.begin_transaction(ctx) as t:
    link_store = db.new_btree(ctx, "student_classes", t)
    
    # Add a link (Student 123 -> Class ABC)
    link_store.add(ctx, sop.Item(key="s123:cABC", value=""))
'''

# The relations snippets use ctx, db and an open transaction t (and `sop`)
# that the cookbook leaves to the reader.
RELATIONS_SETUP = '''
import sop
ctx = sop.Context()
db = sop.Database(sop.DatabaseOptions(stores_folders=["/tmp/sop_relations"]))
t = db.begin_transaction(ctx)
'''
RELATIONS_END = '''
t.commit(ctx)
'''


def test_complex_keys_and_simplified_lookup(db_path, subproc):
    out = run_snippet(COMPLEX_KEYS, db_path, "sop_complex_db")
    assert out.splitlines() == [
        "Added users.",
        "Found: Alice in Eng",
        "Found: Bob in Sales",
    ]
    # a consumer: no IndexSpecification, plain dicts
    out = run_snippet(SIMPLIFIED_LOOKUP, db_path, "sop_complex_db")
    assert out == "Found: Bob\n"
    check = subproc('''
        import json, sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            s = db.open_btree(ctx, "employees", t)
            info = s.get_store_info()
            assert not info.is_primitive_key and info.is_unique
            assert [f["field_name"] for f in
                    json.loads(info.index_specification)["index_fields"]] == [
                "region", "department", "employee_id"]
            # a prefix scan over region "US"
            assert s.find(ctx, {"region": "US"})
            print([(i.key["department"], i.key["employee_id"], i.value["role"])
                   for i in s.get_items(ctx, sop.PagingInfo(page_size=10))])
            assert s.find(ctx, {"region": "US", "department": "Eng", "employee_id": 101})
        ''', db_path)
    assert check == "[('Eng', 101, 'Dev'), ('Sales', 202, 'Manager')]\n"


def test_metadata_carrying_keys(db_path, subproc):
    out = run_snippet(METADATA_KEYS, db_path, "sop_meta_db")
    assert out == ""
    out = run_snippet(QUERYING_METADATA_ONLY.replace(
        "# Querying Metadata Only",
        "from sop import Context, PagingInfo\n"
        "from sop.ai import Database, DatabaseType\n"
        "from sop.database import DatabaseOptions\n"
        "ctx = Context()\n"
        "db = Database(DatabaseOptions(stores_folders=[\"/tmp/sop_meta_db\"], "
        "type=DatabaseType.Standalone))\n"
        "# Querying Metadata Only", 1), db_path, "sop_meta_db")
    assert out.splitlines() == ["Doc 100: [ACTIVE]", "Doc 101: [DELETED]"]
    check = subproc('''
        import sys, sop
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            s = db.open_btree(ctx, "documents", t)
            info = s.get_store_info()
            assert info.is_value_data_actively_persisted  # ValueDataSize.Big
            assert not info.is_value_data_in_node_segment
            # only doc_id is indexed: found whatever the ride-on fields say
            assert s.find(ctx, {"doc_id": 101, "is_deleted": False})
            item = s.get_current_item(ctx)
            print(item.key["is_deleted"], item.value, s.count())
        ''', db_path)
    assert check == "True Large Content B... 2\n"


def test_querying_metadata_only_in_the_same_run(db_path):
    """Section 4 and its query block as one program (the query reuses the
    section's ctx and db)."""
    out = run_snippet(METADATA_KEYS + QUERYING_METADATA_ONLY, db_path, "sop_meta_db")
    assert out.splitlines() == ["Doc 100: [ACTIVE]", "Doc 101: [DELETED]"]


def test_modeling_relations(db_path, subproc):
    out = run_snippet(RELATIONS_SETUP + LOGICAL_RELATIONS + RELATIONS_END, db_path,
                      "sop_relations")
    assert out == ""
    out = run_snippet(RELATIONS_SETUP + LINK_STORE, db_path, "sop_relations")
    assert out == ""
    check = subproc('''
        import sys, sop
        from sop.btree import Relation
        ctx = sop.Context()
        db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            orders = db.open_btree(ctx, "orders", t)
            info = orders.get_store_info()
            assert info.relations == [Relation(["user_id"], "users", ["id"])], info.relations
            assert info.name == "orders"
            links = db.open_btree(ctx, "student_classes", t)
            assert links.find(ctx, "s123:cABC")
            print(links.count(), repr(links.get_current_item(ctx).value))
        ''', db_path)
    assert check == "1 ''\n"
