"""Transactions and database options.

Transaction wraps a native sop._sop.Txn.  Obtain one with
Database.begin_transaction(); use it as a context manager to commit on a
normal exit and roll back (and re-raise) on an exception.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Literal, Optional

from . import _sop
from ._sop import InvalidTransactionStateError, TransactionError

__all__ = [
    "TransactionMode",
    "DatabaseType",
    "MIN_HASH_MOD_VALUE",
    "MAX_HASH_MOD_VALUE",
    "ErasureCodingConfig",
    "RedisCacheConfig",
    "DatabaseOptions",
    "TransactionOptions",
    "TransactionError",
    "InvalidTransactionStateError",
    "Transaction",
]

_log = logging.getLogger("sop")


class TransactionMode(Enum):
    """ForWriting: read-write; commit merges with concurrent commits and
    raises ConflictError if something it read or wrote changed meanwhile.
    ForReading and NoCheck: read-only; a write raises
    ReadOnlyTransactionError.  Both read a snapshot (the last commit before
    begin_transaction), so everything they read is consistent by
    construction and their commit never fails or checks anything: the two
    behave the same (the original's ForReading re-validated its reads at
    commit; a snapshot makes that unnecessary)."""

    NoCheck = 0
    ForWriting = 1
    ForReading = 2


class DatabaseType(Enum):
    Standalone = 0
    Clustered = 1


MIN_HASH_MOD_VALUE = 250
MAX_HASH_MOD_VALUE = 750000


@dataclass
class ErasureCodingConfig:
    data_shards_count: int
    parity_shards_count: int
    base_folder_paths_across_drives: List[str]
    repair_corrupted_shards: bool = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErasureCodingConfig):
            return NotImplemented
        return (
            self.data_shards_count == other.data_shards_count
            and self.parity_shards_count == other.parity_shards_count
            and list(self.base_folder_paths_across_drives or [])
            == list(other.base_folder_paths_across_drives or [])
            and self.repair_corrupted_shards == other.repair_corrupted_shards
        )

    def __hash__(self) -> int:
        return hash((
            self.data_shards_count,
            self.parity_shards_count,
            tuple(self.base_folder_paths_across_drives or ()),
            self.repair_corrupted_shards,
        ))


@dataclass
class RedisCacheConfig:
    address: str = ""
    password: str = ""
    db: int = 0
    url: str = ""


@dataclass
class DatabaseOptions:
    type: DatabaseType = DatabaseType.Standalone
    erasure_config: Optional[Dict[str, ErasureCodingConfig]] = None
    stores_folders: Optional[List[str]] = None
    keyspace: Optional[str] = None
    registry_hash_mod: int = -1
    redis_config: Optional[RedisCacheConfig] = None


@dataclass
class TransactionOptions(DatabaseOptions):
    """A value bag (begin_transaction takes mode and max_time directly)."""

    mode: int = TransactionMode.ForWriting.value
    max_time: int = 0
    logging: bool = False


def _mode_value(mode: Any) -> int:
    return mode.value if isinstance(mode, Enum) else int(mode)


class Transaction:
    """A transaction on a Database.

    Attributes: ctx, options, transaction_id (uuid.UUID), begun, database_id,
    mode (int).  commit/rollback take the ctx like the original (it may be
    omitted: the ctx given at creation is used).
    """

    def __init__(self, ctx, options: Optional[TransactionOptions] = None,
                 id: Optional[uuid.UUID] = None, begun: bool = False,
                 database_id: Optional[uuid.UUID] = None, *, _txn: Any = None,
                 _database: Any = None):
        if id is None:
            raise TransactionError(
                "Direct Transaction creation is deprecated; use "
                "Database.begin_transaction(ctx) instead")
        self.ctx = ctx
        self.options = options
        self.transaction_id = id if isinstance(id, uuid.UUID) else uuid.UUID(str(id))
        self.begun = begun
        self.database_id = database_id
        self._txn = _txn
        self._database = _database
        self._completed = _txn is None or _txn.ended
        self._rolled_back = False

    @property
    def mode(self) -> Optional[int]:
        return self._txn.mode if self._txn is not None else None

    def begin(self) -> None:
        """No-op for transactions returned by begin_transaction (already begun)."""
        if self.begun:
            return
        if self._txn is None:
            raise InvalidTransactionStateError("transaction has no native handle")
        self.begun = True

    def commit(self, ctx=None) -> None:
        """Commit.  A no-op once committed; InvalidTransactionStateError
        after rollback().  ConflictError (a TransactionError) means a
        concurrent commit won: nothing was written, retry."""
        if self._rolled_back:
            _sop.raise_error(_sop.SOP_TXN_ENDED,
                             f"commit after rollback: transaction {self.transaction_id} was "
                             "rolled back")
        if self._completed:
            return
        _check_ctx(ctx if ctx is not None else self.ctx)
        self._completed = True
        _log.debug("commit transaction %s", self.transaction_id)
        self._native_commit()

    def _native_commit(self) -> None:
        txn = self._txn
        if txn is not None and txn.ended:
            try:
                txn.commit()  # MisuseError naming fork when begun in the parent process
            except _sop.Error as e:
                if getattr(e, "code", None) == _sop.SOP_MISUSE:
                    raise
            txn = None
        if txn is None:
            _sop.raise_error(_sop.SOP_TXN_ENDED, f"transaction {self.transaction_id} has ended")
        txn.commit()

    def rollback(self, ctx=None) -> None:
        """Roll back.  Idempotent (a no-op once the transaction has ended);
        a later commit() raises InvalidTransactionStateError."""
        if not self._completed:
            self._rolled_back = True
        self._completed = True
        _log.debug("rollback transaction %s", self.transaction_id)
        if self._txn is not None:
            self._txn.rollback()

    def __enter__(self) -> "Transaction":
        self.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is not None:
            if not self._completed:
                try:
                    self.rollback(self.ctx)
                except Exception:  # keep the original exception
                    _log.exception("rollback after an exception failed")
            return False
        if not self._completed:
            self.commit(self.ctx)
        return False

    def __repr__(self) -> str:
        state = "ended" if self._completed else "active"
        return f"<Transaction {self.transaction_id} {state}>"


def _check_ctx(ctx) -> None:
    """Raise CancelledError unless ctx is a valid Context."""
    if ctx is None or not hasattr(ctx, "error"):
        _sop.raise_error(_sop.SOP_CANCELLED, f"expected a sop.Context, got {type(ctx).__name__}")
    err = ctx.error()
    if err is not None:
        _sop.raise_error(_sop.SOP_CANCELLED, f"the context is no longer valid ({err})")
