"""Hostile inputs for Database.setup / Database.get_options and the folder
path checks (helper h7).  Each test names the defect it shows:

- a hand-made sop.options.json nested deeply (under the 1 MiB size cap)
  escapes json.loads as a raw RecursionError, not sop.CorruptionError;
- a folder path with a lone surrogate (a str no file system can name)
  escapes os.makedirs / os.open as a raw UnicodeEncodeError, not
  sop.InvalidArgumentError (the NUL character is already refused);
- registry_hash_mod with more than 4300 digits passes the type check and
  json.dumps then raises a raw ValueError from Database.setup;
- sop.options.json being a FIFO: get_options (and every Database open of the
  folder) blocks forever in os.open (the engine's own files are opened
  non-blocking and must be regular files; this one is not).
"""

import os
import subprocess
import sys
import textwrap

import pytest

import sop
from sop import Database, DatabaseOptions


def _options_file(folder, text):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sop.options.json"), "w") as f:
        f.write(text)


def test_deeply_nested_options_file_is_corruption(tmp_path):
    """Defect: RecursionError from json.loads escapes get_options."""
    folder = str(tmp_path / "deep")
    _options_file(folder, "[" * 200000)
    with pytest.raises(sop.CorruptionError):
        Database.get_options(sop.Context(), folder)
    nested = ('{"format":"sop.database-options","version":1,"options":'
              + '{"a":' * 100000)
    _options_file(folder, nested)
    with pytest.raises(sop.CorruptionError):
        Database.get_options(sop.Context(), folder)
    with pytest.raises(sop.CorruptionError):
        Database(folder).begin_transaction(sop.Context())


@pytest.mark.parametrize("name", ["a\ud800b", "x\udfff"])
def test_lone_surrogate_folder_is_invalid_argument(tmp_path, name):
    """Defect: UnicodeEncodeError from os.makedirs / os.open escapes setup,
    get_options and Database()."""
    folder = str(tmp_path) + "/" + name
    ctx = sop.Context()
    with pytest.raises(sop.InvalidArgumentError):
        Database.setup(ctx, DatabaseOptions(stores_folders=[folder]))
    with pytest.raises(sop.InvalidArgumentError):
        Database.get_options(ctx, folder)
    with pytest.raises(sop.InvalidArgumentError):
        Database(folder).begin_transaction(ctx)


def test_huge_registry_hash_mod_is_invalid_argument(tmp_path):
    """Defect: an int too long for str() (Python's 4300-digit limit) makes
    json.dumps raise a raw ValueError inside Database.setup."""
    folder = str(tmp_path / "hm")
    with pytest.raises(sop.InvalidArgumentError):
        Database.setup(sop.Context(),
                       DatabaseOptions(stores_folders=[folder], registry_hash_mod=10 ** 5000))
    # nothing half-written: the folder has no options file
    assert Database.get_options(sop.Context(), folder) is None


def test_fifo_options_file_does_not_hang(tmp_path):
    """Defect: a FIFO named sop.options.json blocks get_options (and any
    Database open of the folder) forever.  Expected: a sop error at once.
    Runs in a child process with a time limit so a hang fails, not stalls."""
    folder = tmp_path / "fifo"
    folder.mkdir()
    os.mkfifo(str(folder / "sop.options.json"))
    code = textwrap.dedent(f"""
        import sop
        for f in (lambda: sop.Database.get_options(sop.Context(), {str(folder)!r}),
                  lambda: sop.Database({str(folder)!r}).begin_transaction(sop.Context())):
            try:
                f()
                print("accepted")
            except sop.Error as e:
                print("sop-error", type(e).__name__)
    """)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=20, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        pytest.fail("opening a folder whose sop.options.json is a FIFO hangs")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("sop-error") for line in lines), r.stdout


def test_huge_max_time_is_invalid_argument(tmp_path):
    """Defect: begin_transaction converts max_time with float() and catches
    only TypeError/ValueError, so an int beyond the float range escapes as a
    raw OverflowError.  Expected: InvalidArgumentError (or the 60-minute cap,
    as for any other large number)."""
    db = Database(str(tmp_path / "db"))
    try:
        t = db.begin_transaction(sop.Context(), max_time=10 ** 400)
    except sop.InvalidArgumentError:
        db.close()
        return
    t.rollback(sop.Context())
    db.close()


def test_get_options_on_a_regular_file_is_an_error(tmp_path):
    """Defect (inconsistency): get_options on a path that is a regular file
    returns None ("no options saved") while setup and Database on the same
    path raise StorageIOError ("it exists and is not a directory").
    Expected: get_options raises a sop error too, since that path can never
    hold a database."""
    f = tmp_path / "plain"
    f.write_text("not a folder")
    with pytest.raises(sop.Error):
        Database.get_options(sop.Context(), str(f))
    with pytest.raises(sop.StorageIOError):
        Database.setup(sop.Context(), DatabaseOptions(stores_folders=[str(f)]))
