"""get_keys / get_items paging argument (hostile round, helper h7).

Defect: the paging argument is read by attribute with defaults for every
missing attribute, so anything that is not a PagingInfo is silently taken
as the default page of 20: get_keys(ctx, {"page_size": 3}) (a dict, as a
user of a JSON API would write) returns 20 keys, and get_keys(ctx, 5) or
get_keys(ctx, "x") return 20 too.  Expected: a specific error (TypeError or
sop.InvalidArgumentError) for an argument that is neither a PagingInfo
(or an object with its fields) nor None."""

import pytest

import sop
from sop import Database, Item


@pytest.mark.parametrize("bad", [{"page_size": 3}, 5, "x", [3]])
@pytest.mark.parametrize("method", ["get_keys", "get_items"])
def test_paging_argument_of_wrong_type_is_refused(tmp_path, bad, method):
    ctx = sop.Context()
    db = Database(str(tmp_path / "db"))
    t = db.begin_transaction(ctx)
    b = db.new_btree(ctx, "s", t)
    b.add(ctx, [Item(key=i, value=i) for i in range(30)])
    assert b.first(ctx)
    with pytest.raises((TypeError, sop.InvalidArgumentError)):
        getattr(b, method)(ctx, bad)
    t.rollback(ctx)
    db.close()
