"""Opening a new database on a full file system raises sop.DiskFullError in a
process that lives on (no SIGBUS), and the folder works once space is
freed.  Needs a small tmpfs (root); skipped where mount is not allowed."""

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import sys
    import sop
    from sop import Context, Database, DatabaseOptions, Item
    ctx = Context()
    db = Database(DatabaseOptions(stores_folders=[sys.argv[1]]))
    try:
        with db.begin_transaction(ctx) as t:
            b = db.new_btree(ctx, "s", t) if sys.argv[2] == "new" else db.open_btree(ctx, "s", t)
            b.add(ctx, Item(key=int(sys.argv[3]), value="v"))
        with db.begin_transaction(ctx, sop.TransactionMode.ForReading) as t:
            assert db.open_btree(ctx, "s", t).find(ctx, int(sys.argv[3]))
        print("ok")
    except sop.DiskFullError as e:
        print("full:", e)
""")


def _run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _fill(mnt, start):
    """Write 4 KiB files fill-N until the file system is full; next N."""
    n = start
    while True:
        p = os.path.join(mnt, f"fill-{n:05d}")
        try:
            with open(p, "wb") as f:
                f.write(b"x" * 4096)
        except OSError:
            try:
                os.unlink(p)
            except OSError:
                pass
            return n
        n += 1


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_new_database_on_full_fs(tiny_fs):
    n, full = 0, 0
    for free_pages in range(0, 6):
        n = _fill(tiny_fs, n)
        for _ in range(free_pages):
            n -= 1
            os.unlink(os.path.join(tiny_fs, f"fill-{n:05d}"))
        r = _run(os.path.join(tiny_fs, f"db{free_pages}"), "new", "1")
        assert r.returncode == 0, f"child died ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert r.stdout.startswith(("ok", "full:")), r.stdout + r.stderr
        full += r.stdout.startswith("full:")
    assert full > 0  # the full file system was reported as DiskFullError
    for name in os.listdir(tiny_fs):
        if name.startswith("fill-"):
            os.unlink(os.path.join(tiny_fs, name))
    for free_pages in range(0, 6):
        r = _run(os.path.join(tiny_fs, f"db{free_pages}"), "new", "2")
        assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
