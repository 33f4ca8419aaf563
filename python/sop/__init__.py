"""sop: a transactional B-tree object store (Python binding of libsop).

    import sop
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=["/path/to/db"]))
    with db.begin_transaction(ctx) as t:
        store = db.new_btree(ctx, "users", t)
        store.add(ctx, sop.Item(key="user_1", value={"name": "Ann"}))

Every error is a subclass of sop.Error generated from the engine's error
table (sop.ERROR_CLASSES), e.g. sop.ConflictError, sop.StoreNotFoundError.
"""

from . import _sop
from ._sop import ERROR_CLASSES

# The error classes, named one by one so that type checkers (mypy, pyright)
# see sop.ConflictError & co. through the stub _sop.pyi; the update below
# adds any class the engine's table has and this list lacks (a test checks
# that the list is complete).
from ._sop import (  # noqa: E402
    BtreeError as BtreeError,
    CancelledError as CancelledError,
    ConflictError as ConflictError,
    CorruptionError as CorruptionError,
    DatabaseBusyError as DatabaseBusyError,
    DatabasePoisonedError as DatabasePoisonedError,
    DiskFullError as DiskFullError,
    Error as Error,
    FormatVersionError as FormatVersionError,
    InvalidArgumentError as InvalidArgumentError,
    InvalidStoreNameError as InvalidStoreNameError,
    InvalidTransactionStateError as InvalidTransactionStateError,
    KeyChangedError as KeyChangedError,
    KeyExistsError as KeyExistsError,
    KeyTooLargeError as KeyTooLargeError,
    KeyTypeError as KeyTypeError,
    MisuseError as MisuseError,
    NoCurrentItemError as NoCurrentItemError,
    NotFoundError as NotFoundError,
    OutOfMemoryError as OutOfMemoryError,
    ReadOnlyTransactionError as ReadOnlyTransactionError,
    StorageIOError as StorageIOError,
    StoreIncompatibleError as StoreIncompatibleError,
    StoreNotFoundError as StoreNotFoundError,
    TransactionError as TransactionError,
    TransactionTimeoutError as TransactionTimeoutError,
    ValueTooLargeError as ValueTooLargeError,
    ValueTypeError as ValueTypeError,
)

globals().update(ERROR_CLASSES)

from .context import Context  # noqa: E402
from .transaction import (  # noqa: E402
    DatabaseOptions,
    DatabaseType,
    Transaction,
    TransactionMode,
    TransactionOptions,
)
from .btree import (  # noqa: E402
    Btree,
    BtreeOptions,
    Item,
    PagingDirection,
    PagingInfo,
    ValueDataSize,
)
from .database import Database  # noqa: E402
from .logger import Logger, LogLevel  # noqa: E402
from . import ai, btree, context, database, logger, transaction  # noqa: E402,F401

__version__ = _sop.__version__

__all__ = [
    "__version__",
    "ai",
    "Transaction",
    "TransactionOptions",
    "TransactionMode",
    "Context",
    "Btree",
    "BtreeOptions",
    "Item",
    "PagingInfo",
    "PagingDirection",
    "ValueDataSize",
    "Database",
    "DatabaseOptions",
    "DatabaseType",
    "Logger",
    "LogLevel",
    "ERROR_CLASSES",
    *sorted(ERROR_CLASSES),
]
