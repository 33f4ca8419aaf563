"""Property test (hypothesis, stateful): a sop Btree against a dict.

Random sequences of add / add_if_not_exists / update / upsert / remove /
find / get_values / paged scans, commits, rollbacks and reopening of the
database, on a unique store with a small slot length (splits and merges
early).  After every step the store's count and, at each commit, its whole
content match the model.  Hypothesis shrinks a failure to a short sequence.
Examples: 100 (500 with SOP_SOAK=1); no deadline when SOP_SANITIZER is set
(see conftest.py)."""

import shutil
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

import sop  # noqa: E402
import sop.database  # noqa: E402
from sop import BtreeOptions, Item, PagingInfo  # noqa: E402

keys = st.one_of(st.integers(-50, 50), st.integers(-2**62, 2**62))
values = st.one_of(st.none(), st.integers(), st.text(max_size=20),
                   st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


class BtreeAgainstDict(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="sop-hyp-")
        self.ctx = sop.Context()
        self.committed = {}
        self.work = {}
        self.txn = None
        self._begin(create=True)
        self.txn.commit()  # the empty store, so that a rollback keeps it
        self._begin()

    # -- helpers

    def _begin(self, create=False):
        self.db = sop.Database(sop.DatabaseOptions(stores_folders=[self.folder]))
        self.txn = self.db.begin_transaction(self.ctx)
        if create:
            self.store = self.db.new_btree(self.ctx, "t", self.txn,
                                           BtreeOptions(slot_length=4, is_unique=True))
        else:
            self.store = self.db.open_btree(self.ctx, "t", self.txn)

    def _scan(self):
        out = []
        if not self.store.first(self.ctx):
            return out
        while True:
            page = self.store.get_items(self.ctx, PagingInfo(page_size=7))
            out.extend((i.key, i.value) for i in page)
            if len(page) < 7:
                return out

    # -- writes

    @rule(k=keys, v=values)
    def add(self, k, v):
        assert self.store.add(self.ctx, Item(key=k, value=v)) == (k not in self.work)
        self.work.setdefault(k, v)

    @rule(k=keys, v=values)
    def add_if_not_exists(self, k, v):
        assert self.store.add_if_not_exists(self.ctx, k, v if v is not None else 0) \
            == (k not in self.work)
        self.work.setdefault(k, v if v is not None else 0)

    @rule(k=keys, v=values)
    def update(self, k, v):
        assert self.store.update(self.ctx, Item(key=k, value=v)) == (k in self.work)
        if k in self.work:
            self.work[k] = v

    @rule(k=keys, v=values)
    def upsert(self, k, v):
        assert self.store.upsert(self.ctx, Item(key=k, value=v))
        self.work[k] = v

    @rule(k=keys)
    def remove(self, k):
        assert self.store.remove(self.ctx, k) == (k in self.work)
        self.work.pop(k, None)

    @precondition(lambda self: self.work)
    @rule(data=st.data())
    def remove_existing(self, data):
        k = data.draw(st.sampled_from(sorted(self.work)))
        assert self.store.remove(self.ctx, [k])
        del self.work[k]

    # -- reads

    @rule(k=keys)
    def find(self, k):
        found = self.store.find(self.ctx, k)
        assert found == (k in self.work)
        if found:
            it = self.store.get_current_item(self.ctx)
            assert (it.key, it.value) == (k, self.work[k])

    @rule(ks=st.lists(keys, max_size=4))
    def get_values(self, ks):
        got = self.store.get_values(self.ctx, [Item(key=k) for k in ks])
        assert [(i.key, i.value) for i in got] == [(k, self.work.get(k)) for k in ks]

    @rule()
    def scan(self):
        assert self._scan() == sorted(self.work.items())

    # -- transactions

    @rule()
    def commit(self):
        self.txn.commit()
        self.committed = dict(self.work)
        self._begin()

    @rule()
    def rollback(self):
        self.txn.rollback()
        self.work = dict(self.committed)
        self._begin()

    @rule()
    def reopen(self):
        self.txn.commit()
        self.committed = dict(self.work)
        self.db.close()
        self._begin()
        assert self._scan() == sorted(self.committed.items())

    @invariant()
    def count_matches(self):
        assert self.store.count() == len(self.work)

    def teardown(self):
        try:
            if self.txn is not None:
                self.txn.rollback()
        finally:
            sop.database._close_all()
            shutil.rmtree(self.folder, ignore_errors=True)


BtreeAgainstDict.TestCase.settings = hypothesis.settings(
    hypothesis.settings.default, stateful_step_count=40)
TestBtreeAgainstDict = BtreeAgainstDict.TestCase
