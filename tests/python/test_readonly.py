"""Read-only use of a database from Python: a user without write permission
(user nobody on a 0555 folder of 0444 files) and root on a read-only bind
mount can open the database and read it in ForReading transactions; a
ForWriting commit fails with a sop error; no byte of the folder changes.

Runs the reader in a child process (setpriv for nobody).  Needs root; skips
with the reason when setpriv, mount or root are not available."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

import sop
from sop import btree

READER = textwrap.dedent(r"""
    import sys
    import sop
    from sop import btree
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[sys.argv[1]]))
    with db.begin_transaction(ctx, mode=sop.TransactionMode.ForReading.value) as t:
        users = db.open_btree(ctx, "users", t)
        assert users.count() == 50, users.count()
        assert users.find(ctx, "user_042")
        assert users.get_current_item(ctx).value == "v42"
        users.first(ctx)
        keys = [it.key for it in users.get_items(ctx, sop.PagingInfo(page_size=5))]
        assert keys == [f"user_{i:03d}" for i in range(5)], keys
    try:
        with db.begin_transaction(ctx) as t:
            users = db.open_btree(ctx, "users", t)
            users.add(ctx, btree.Item(key="user_999", value="x"))
    except sop.Error as e:
        print("write refused:", type(e).__name__, e)
    else:
        print("WRITE COMMITTED")
    print("read ok")
""")


def _folder_digest(path):
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        st = os.lstat(p)
        h.update(f"{name}\0{st.st_mode}\0{st.st_size}\0".encode())
        if os.path.isfile(p):
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _make_db(path):
    ctx = sop.Context()
    db = sop.Database(sop.DatabaseOptions(stores_folders=[path]))
    with db.begin_transaction(ctx) as t:
        users = db.new_btree(ctx, "users", t)
        for i in range(50):
            users.add(ctx, btree.Item(key=f"user_{i:03d}", value=f"v{i}"))
    db.close()
    sop.database._close_all()


def _pythonpath():
    return os.pathsep.join(p for p in sys.path if p)


@pytest.fixture
def shared_dir():
    """A scratch folder other users can reach (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="sop_ro_", dir="/tmp" if os.path.isdir("/tmp") else None)
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["chmod", "-R", "u+w", d], check=False)
    shutil.rmtree(d, ignore_errors=True)


def _run_reader(prefix, db_path):
    env = dict(os.environ, PYTHONPATH=_pythonpath())
    return subprocess.run(prefix + [sys.executable, "-c", READER, db_path], capture_output=True, text=True,
                          timeout=120, env=env)


def _check(res, digest_before, db_path):
    assert res.returncode == 0, f"reader failed:\n{res.stdout}\n{res.stderr}"
    assert "read ok" in res.stdout
    assert "write refused" in res.stdout, res.stdout
    assert _folder_digest(db_path) == digest_before


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_read_as_user_without_write_permission(shared_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the reader as user nobody")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    probe = subprocess.run(NOBODY + [sys.executable, "-c", "import sop._sop"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=_pythonpath()))
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot import sop from this build's folders: {probe.stderr.strip()[-200:]}")
    if subprocess.run(NOBODY + ["test", "-x", shared_dir]).returncode != 0:
        pytest.skip(f"user nobody cannot reach {shared_dir}")
    db_path = os.path.join(shared_dir, "db")
    _make_db(db_path)
    for name in os.listdir(db_path):
        os.chmod(os.path.join(db_path, name), 0o444)
    os.chmod(db_path, 0o555)
    before = _folder_digest(db_path)
    _check(_run_reader(NOBODY, db_path), before, db_path)


def test_read_on_read_only_mount(shared_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root for mount --bind")
    src = os.path.join(shared_dir, "db")
    mnt = os.path.join(shared_dir, "mnt")
    _make_db(src)
    os.mkdir(mnt)
    r = subprocess.run(["mount", "--bind", src, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount --bind refused here: {r.stderr.strip()}")
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"read-only remount refused here: {r.stderr.strip()}")
        before = _folder_digest(mnt)
        _check(_run_reader([], mnt), before, mnt)
    finally:
        subprocess.run(["umount", mnt], check=False)
