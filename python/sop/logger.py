"""Logging configuration for the sop package (Python's logging module,
logger name "sop")."""

from __future__ import annotations

import logging
import sys
from enum import Enum
from typing import Optional

from . import _sop

__all__ = ["LogLevel", "Logger"]


class LogLevel(Enum):
    Debug = 0
    Info = 1
    Warn = 2
    Error = 3


_LEVELS = {
    LogLevel.Debug: logging.DEBUG,
    LogLevel.Info: logging.INFO,
    LogLevel.Warn: logging.WARNING,
    LogLevel.Error: logging.ERROR,
}

_FORMAT = "time=%(asctime)s level=%(levelname)s msg=%(message)s"


class Logger:
    @staticmethod
    def configure(level: LogLevel, log_path: Optional[str] = None) -> None:
        """Send the "sop" logger to log_path (appended) or, when empty, to
        stderr, at the given level (unknown levels mean Info).  Raises
        sop.StorageIOError (an OSError) if the file cannot be opened."""
        lvl = _LEVELS.get(level)
        if lvl is None:
            try:
                lvl = _LEVELS.get(LogLevel(level), logging.INFO)
            except ValueError:
                lvl = logging.INFO
        if log_path:
            try:
                handler: logging.Handler = logging.FileHandler(log_path, mode="a",
                                                               encoding="utf-8")
            except OSError as e:
                try:
                    _sop.raise_error(_sop.SOP_IOERR,
                                     f"cannot open log file {log_path!r}: {e.strerror or e}")
                except _sop.Error as err:
                    raise err from e
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        log = logging.getLogger("sop")
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()
        log.addHandler(handler)
        log.setLevel(lvl)
        log.propagate = False
