"""Database: the entry point (a folder of stores), transactions and B-trees.

A Database is lazy: nothing happens on disk until the first call that takes a
ctx.  The engine must not open one folder twice in a process, so every
Database on the same folder shares one native sop._sop.Env (a module-level
registry keyed by the folder's real path).

This build runs Standalone only: Clustered mode, Cassandra keyspaces, Redis
cache configs, erasure coding and multi-folder replication raise
sop.InvalidArgumentError.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import asdict, fields
from enum import Enum
from typing import Any, Dict, NoReturn, Optional

from . import _dboptions, _sop
from .btree import Btree, BtreeOptions, IndexSpecification, _create_options
from .transaction import (
    DatabaseOptions,
    DatabaseType,
    RedisCacheConfig,
    Transaction,
    TransactionMode,
    _check_ctx,
)

__all__ = [
    "Database",
    "DatabaseOptions",
    "DatabaseType",
    "RedisCacheConfig",
    "Btree",
    "BtreeOptions",
    "IndexSpecification",
]

# ---- one native Env per folder per process -----------------------------------
# Keyed by process id too: a fork() child (a multiprocessing worker, a
# pre-fork server) must open a handle of its own; the parent's handles refuse
# every call in the child (sop.MisuseError naming fork).  The table's lock is
# made anew in a child, since another thread may have held it at the fork.

_envs: Dict[Any, _sop.Env] = {}
_envs_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _envs_lock
    _envs_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _env_for(folder: str) -> _sop.Env:
    key = (os.getpid(), os.path.realpath(os.path.abspath(folder)))
    with _envs_lock:
        env = _envs.get(key)
        if env is None or env.closed:
            try:
                os.makedirs(key[1], exist_ok=True)
            except OSError as e:
                try:
                    _sop.raise_error(_sop.SOP_IOERR, f"cannot create {key[1]!r}: {e.strerror or e}")
                except _sop.Error as err:
                    raise err from e
            env = _sop.Env(key[1])
            _envs[key] = env
        return env


def _close_all() -> None:
    """Close every shared Env of this process (tests use it between cases)."""
    pid = os.getpid()
    with _envs_lock:
        envs = [v for k, v in _envs.items() if k[0] == pid]
        for k in [k for k in _envs if k[0] == pid]:
            del _envs[k]
    for env in envs:
        env.close()


def _bad_option(msg: str) -> NoReturn:
    _sop.raise_error(_sop.SOP_INVALID, msg)


def _standalone_folder(options: Optional[DatabaseOptions]) -> str:
    """Validate options for this build and return the database folder
    (absolute)."""
    if options is None:
        _bad_option("a DatabaseOptions with stores_folders is required")
    _dboptions.check_options(options)
    t: Any = options.type
    t = t.value if isinstance(t, Enum) else t
    if t not in (DatabaseType.Standalone.value, None):
        _bad_option("clustered mode (DatabaseType.Clustered) is not available in this build; "
                    "use DatabaseType.Standalone")
    if options.keyspace:
        _bad_option("Cassandra keyspaces (DatabaseOptions.keyspace) are not available in this "
                    "build")
    if options.redis_config is not None:
        _bad_option("Redis caching (DatabaseOptions.redis_config) is not available in this build")
    if options.erasure_config:
        _bad_option("erasure coding (DatabaseOptions.erasure_config) is not available in this "
                    "build")
    folders = _dboptions.folders_of(options)
    if not folders:
        _bad_option("StoresFolders must be provided (DatabaseOptions.stores_folders)")
    if len(folders) > 1:
        _bad_option("replication across several stores_folders is not available in this build; "
                    "give one folder")
    return folders[0]


def _with_saved(options: DatabaseOptions, folder: str) -> DatabaseOptions:
    """options with the ones Database.setup saved in folder (if any) in
    place of the given ones; stores_folders is the folder itself."""
    saved = _dboptions.read(folder)
    if saved is None:
        return options
    saved.stores_folders = [folder]
    return saved


class Database:
    """A database folder.

    ``Database(DatabaseOptions(stores_folders=[path]))`` like the original;
    ``Database(path)``, ``Database(ctx, storage_path=path)`` and
    ``Database(stores_folders=[...])`` work too.  ``id`` becomes a uuid.UUID
    on first use.  If the folder holds options saved by Database.setup,
    those are used (``options`` shows them after the first use).
    """

    def __init__(self, options: Any = None, *, storage_path: Any = None,
                 **option_fields: Any):
        if options is not None and not isinstance(options, DatabaseOptions) \
                and hasattr(options, "error"):
            options = None  # Database(ctx, storage_path=...): the ctx is not kept
        if isinstance(options, (str, bytes, os.PathLike)):
            if storage_path is not None or "stores_folders" in option_fields:
                raise TypeError("give the database folder once (a path, storage_path= or "
                                "stores_folders=)")
            storage_path, options = options, None  # Database("/path")
        if options is None and (storage_path is not None or option_fields):
            if storage_path is not None:
                option_fields.setdefault("stores_folders", [storage_path])
            options = DatabaseOptions(**option_fields)
        elif option_fields or storage_path is not None:
            raise TypeError("give either a DatabaseOptions or option keywords, not both")
        if options is not None and not isinstance(options, DatabaseOptions):
            raise TypeError("Database() takes a sop.DatabaseOptions or a folder path, not "
                            f"{type(options).__name__}")
        self.options: Optional[DatabaseOptions] = options
        self.id: Optional[uuid.UUID] = None
        self._env: Optional[_sop.Env] = None
        self._pid = 0  # the process self._env was opened in
        self._lock = threading.Lock()

    # -- internals

    def _ensure(self) -> _sop.Env:
        env = self._env
        if env is not None and not env.closed and self._pid == os.getpid():
            return env
        if self._pid != os.getpid():
            self._lock = threading.Lock()  # a fork() child: the parent's lock state is not ours
        with self._lock:
            if self._env is None or self._env.closed or self._pid != os.getpid():
                # (a Database made before fork() opens its own handle in the child)
                folder = _standalone_folder(self.options)
                assert self.options is not None  # checked by _standalone_folder
                _dboptions.make_folder(folder)
                options = _with_saved(self.options, folder)
                if options is not self.options:
                    _standalone_folder(options)  # saved options this build cannot run
                self._env = _env_for(folder)
                self._pid = os.getpid()
                self.options = options
                if self.id is None:
                    self.id = uuid.uuid4()
            return self._env

    # -- options saved in the folder

    @staticmethod
    def setup(ctx, options: DatabaseOptions) -> DatabaseOptions:
        """Save options in the database folder (file sop.options.json,
        written atomically, checksummed); a later Database on the folder
        uses them.  stores_folders becomes absolute.  If the folder already
        has saved options, they are kept and copied into ``options``
        instead.  Returns ``options``."""
        _check_ctx(ctx)
        if not isinstance(options, DatabaseOptions):
            raise TypeError("Database.setup(ctx, options): options must be a "
                            f"sop.DatabaseOptions, not {type(options).__name__}")
        folder = _standalone_folder(options)
        _dboptions.make_folder(folder)
        saved = _dboptions.read(folder)
        if saved is None and _dboptions.write_new(folder,
                                                  _dboptions.encode(options, [folder])):
            options.stores_folders = [folder]
            return options
        if saved is None:  # another setup won the race
            saved = _dboptions.read(folder)
            if saved is None:
                _sop.raise_error(_sop.SOP_IOERR, f"the options file in {folder!r} vanished "
                                                 "while it was being set up")
        saved.stores_folders = [folder]
        for f in fields(DatabaseOptions):
            setattr(options, f.name, getattr(saved, f.name))
        return options

    @staticmethod
    def get_options(ctx, store_path: Any) -> Optional[DatabaseOptions]:
        """The options Database.setup saved in the folder store_path (its
        stores_folders is that folder, absolute), or None if it has none.
        A damaged file raises sop.CorruptionError."""
        _check_ctx(ctx)
        folder = _dboptions.folder_path(store_path, "store_path")
        saved = _dboptions.read(folder)
        if saved is not None:
            saved.stores_folders = [folder]
        return saved

    @property
    def path(self) -> str:
        """The database folder (absolute)."""
        return self._ensure().path

    # -- API

    def begin_transaction(self, ctx, mode: Any = TransactionMode.ForWriting.value,
                          max_time: Any = 15) -> Transaction:
        """Begin a transaction.  mode: int or TransactionMode; max_time in
        minutes (<= 0 means 15, capped at 60)."""
        _check_ctx(ctx)
        m = mode.value if isinstance(mode, Enum) else mode
        if isinstance(m, bool) or not isinstance(m, int) or m not in (0, 1, 2):
            _bad_option(f"mode must be a TransactionMode or 0, 1, 2, not {mode!r}")
        try:
            minutes = float(max_time)
        except (TypeError, ValueError, OverflowError):
            _bad_option(f"max_time must be a number of minutes, not {max_time!r}")
        if not minutes > 0:
            minutes = 15
        minutes = min(minutes, 60)
        txn = self._ensure().begin(m, int(minutes * 60_000))
        return Transaction(ctx, id=uuid.uuid4(), begun=True, database_id=self.id, _txn=txn,
                           _database=self)

    def new_btree(self, ctx, name: str, trans: Transaction,
                  options: Optional[BtreeOptions] = None,
                  index_spec: Optional[IndexSpecification] = None) -> Btree:
        """Create a store, or open it if it exists with a compatible config
        (sop.StoreIncompatibleError otherwise).  options=None means
        is_unique=True, slot_length=1000."""
        return _new_btree(ctx, name, trans, options, index_spec, Btree)

    def open_btree(self, ctx, name: str, trans: Transaction) -> Btree:
        """Open an existing store (sop.StoreNotFoundError if there is none)."""
        return _open_btree(ctx, name, trans, Btree)

    def remove_btree(self, ctx, name: str) -> None:
        """Remove a store and all its data (its own transaction; no
        transaction argument).  A missing store is not an error."""
        _check_ctx(ctx)
        try:
            self._ensure().remove_store(name)
        except _sop.StoreNotFoundError:
            pass

    def check(self, ctx=None) -> None:
        """Integrity check of the whole database (the same as `sop check
        PATH`): every store's tree and every stored blob.  Raises
        sop.CorruptionError with a report naming the file and object of each
        problem; returns None when the database is clean."""
        if ctx is not None:
            _check_ctx(ctx)
        self._ensure().check()

    def close(self) -> None:
        """Close the shared native database of this folder (open
        transactions are rolled back).  The Database reopens on next use."""
        env = self._env
        if env is None:
            return
        with _envs_lock:
            for k, v in list(_envs.items()):
                if v is env:
                    del _envs[k]
        env.close()

    def __repr__(self) -> str:
        folders = self.options.stores_folders if self.options else None
        return f"<Database {folders!r}>"


def _txn_of(trans: Any):
    txn = getattr(trans, "_txn", None)
    if txn is None:
        _sop.raise_error(_sop.SOP_INVALID,
                         "trans must be a Transaction from Database.begin_transaction")
    return txn


def _new_btree(ctx, name: str, trans: Transaction, options: Optional[BtreeOptions],
               index_spec: Optional[IndexSpecification], cls: type) -> Btree:
    _check_ctx(ctx)
    txn = _txn_of(trans)
    _check_store_name(name)
    if options is not None and not isinstance(options, BtreeOptions):
        raise TypeError(f"options must be a sop.BtreeOptions or None, not {type(options).__name__}")
    if index_spec is not None and not isinstance(index_spec, IndexSpecification):
        _sop.raise_error(_sop.SOP_INVALID, "index_spec must be a sop.btree.IndexSpecification "
                                           f"or None, not {type(index_spec).__name__}")
    if options is None:
        options = BtreeOptions(name=name, is_unique=True, slot_length=1000,
                               description="General purpose B-Tree created via Database")
    else:
        options.name = name
        options.transaction_id = str(trans.transaction_id)
        if index_spec:
            options.index_specification = json.dumps(asdict(index_spec))
    store = txn.open_store(name, _create_options(options), cls)
    return store._attach(trans)


def _check_store_name(name: Any) -> None:
    if not isinstance(name, str):
        _sop.raise_error(_sop.SOP_BAD_NAME, f"store names are str, not {type(name).__name__}")


def _open_btree(ctx, name: str, trans: Transaction, cls: type) -> Btree:
    _check_ctx(ctx)
    _check_store_name(name)
    store = _txn_of(trans).open_store(name, None, cls)
    return store._attach(trans)
