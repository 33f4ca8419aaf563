"""Wrong values for the database path from Python (helper h5).

A folder name with a NUL byte is refused by the native Env with
sop.InvalidArgumentError ("bad database path"); through sop.Database the
same name escapes as a bare ValueError from os.makedirs, not a sop
exception.  Expected: the same specific sop error either way."""

import pytest

import sop
import sop._sop


def test_env_nul_in_path_is_sop_error(tmp_path):
    with pytest.raises(sop.InvalidArgumentError):
        sop._sop.Env(str(tmp_path / "a\0b"))


def test_database_nul_in_folder_is_sop_error(tmp_path):
    db = sop.Database(sop.DatabaseOptions(stores_folders=[str(tmp_path / "a\0b")]))
    with pytest.raises(sop.InvalidArgumentError):
        db.begin_transaction(sop.Context())


def test_env_numbers_checked(tmp_path):
    """The native Env refuses a negative cache size (it used to wrap around to
    an unlimited cache) and a lock timeout out of range; a valid timeout is
    taken."""
    from sop import _sop
    with pytest.raises(sop.InvalidArgumentError, match="cache_bytes"):
        _sop.Env(str(tmp_path / "a"), cache_bytes=-1)
    with pytest.raises(sop.InvalidArgumentError, match="lock_timeout_ms"):
        _sop.Env(str(tmp_path / "b"), lock_timeout_ms=-5)
    with pytest.raises(sop.InvalidArgumentError, match="lock_timeout_ms"):
        _sop.Env(str(tmp_path / "c"), lock_timeout_ms=1 << 40)
    env = _sop.Env(str(tmp_path / "d"), lock_timeout_ms=500)
    env.close()
