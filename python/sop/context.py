"""Context: the handle passed as ``ctx`` to every operation.

A Context is valid until cancel() is called; after that every operation
given it raises sop.CancelledError (a TransactionError).
"""

from __future__ import annotations

import itertools
import threading
from typing import Optional

from . import _sop

__all__ = ["Context"]

_ids = itertools.count(1)
_ids_lock = threading.Lock()


class Context:
    """Operation context.  ``id`` is a process-unique int (from 1)."""

    # _cancelled in a slot: the extension reads it at a fixed offset on every
    # call; other attributes still go to the instance dict.
    __slots__ = ("_cancelled", "id", "__dict__", "__weakref__")

    def __init__(self) -> None:
        with _ids_lock:
            self.id: int = next(_ids)
        self._cancelled = False

    def cancel(self) -> None:
        """Invalidate the context; later operations using it raise CancelledError."""
        self._cancelled = True

    def error(self) -> Optional[str]:
        """None while valid, else a description of why it is not."""
        return "context cancelled" if self._cancelled else None

    def is_valid(self) -> bool:
        return self.error() is None

    def __repr__(self) -> str:
        return f"<Context {self.id}{' cancelled' if self._cancelled else ''}>"


# Lets the extension check a plain Context without calling error() (it reads
# _cancelled directly, and falls back to error() if the class is changed).
_sop._register(Context=Context)
