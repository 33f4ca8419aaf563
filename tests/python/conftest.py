"""Shared fixtures for the sop Python tests: a fresh database folder per
test, a Context, a Database on that folder, and a helper that runs Python
code in a second process (to check what a commit left on disk)."""

import os
import subprocess
import sys
import textwrap

import pytest

import sop
import sop.database


@pytest.fixture(autouse=True)
def _close_envs():
    """Close every native Env after each test so folders are not kept open."""
    yield
    sop.database._close_all()


@pytest.fixture
def db_path(tmp_path):
    """A fresh, not yet existing database folder."""
    return str(tmp_path / "db")


@pytest.fixture
def ctx():
    return sop.Context()


@pytest.fixture
def db(db_path):
    return sop.Database(sop.DatabaseOptions(stores_folders=[db_path]))


def run_in_subprocess(code: str, *args: str, timeout: float = 120) -> str:
    """Run dedented `code` in a new Python process (argv[1:] = args); return
    its stdout.  Fails the test on a non-zero exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                         capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, f"subprocess failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.fixture
def subproc():
    return run_in_subprocess
