"""sop.ai: the AI-flavoured Database (vector and model stores are added by
later versions; today it offers everything sop.Database does)."""

from ..database import Database as _BaseDatabase
from ..transaction import DatabaseType

__all__ = ["Database", "DatabaseType"]


class Database(_BaseDatabase):
    """Database for AI workloads; same constructor and methods as sop.Database."""
