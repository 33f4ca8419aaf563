"""The exception hierarchy generated from the engine's error table."""

import pytest

import sop
from sop import _sop


def test_roots():
    assert issubclass(sop.Error, Exception)
    assert issubclass(sop.TransactionError, sop.Error)
    assert issubclass(sop.BtreeError, sop.TransactionError)
    assert sop.btree.BtreeError is sop.BtreeError
    assert sop.transaction.TransactionError is sop.TransactionError
    assert sop.transaction.InvalidTransactionStateError is sop.InvalidTransactionStateError


def test_table_classes():
    expected_bases = {
        "NotFoundError": (sop.BtreeError, LookupError),
        "KeyExistsError": (sop.BtreeError,),
        "StoreNotFoundError": (sop.BtreeError, LookupError),
        "ConflictError": (sop.TransactionError,),
        "InvalidTransactionStateError": (sop.TransactionError,),
        "ReadOnlyTransactionError": (sop.BtreeError,),
        "InvalidArgumentError": (sop.Error, ValueError),
        "KeyTooLargeError": (sop.InvalidArgumentError, ValueError),
        "KeyTypeError": (sop.InvalidArgumentError, TypeError),
        "ValueTypeError": (sop.InvalidArgumentError, TypeError),
        "InvalidStoreNameError": (sop.InvalidArgumentError,),
        "CorruptionError": (sop.Error,),
        "FormatVersionError": (sop.CorruptionError,),
        "StorageIOError": (sop.Error, OSError),
        "DiskFullError": (sop.StorageIOError, OSError),
        "OutOfMemoryError": (sop.Error, MemoryError),
        "CancelledError": (sop.TransactionError,),
    }
    for name, bases in expected_bases.items():
        cls = sop.ERROR_CLASSES[name]
        assert getattr(sop, name) is cls
        for b in bases:
            assert issubclass(cls, b), (name, b)
    codes = {cls.code for cls in sop.ERROR_CLASSES.values() if cls.code is not None}
    assert len(codes) == len([c for c in sop.ERROR_CLASSES.values() if c.code is not None])


def test_raise_error_message_and_code():
    with pytest.raises(sop.ConflictError) as ei:
        _sop.raise_error(_sop.SOP_CONFLICT, "store x")
    assert ei.value.code == _sop.SOP_CONFLICT
    assert str(ei.value).startswith("transaction conflicts with a concurrent commit")
    assert str(ei.value).endswith(": store x")


def test_unknown_code_gives_base_error():
    with pytest.raises(sop.Error) as ei:
        _sop.raise_error(999, "odd")
    assert type(ei.value) is sop.Error
    assert ei.value.code == 999


def test_oserror_subclass_constructs():
    e = sop.StorageIOError("I/O error: boom")
    assert isinstance(e, OSError) and str(e) == "I/O error: boom"
