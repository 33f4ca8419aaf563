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

# SOP_SOAK=1 (scripts/test.sh passes it through): the long soak variants.
# Tests scale their iteration counts with soak_scale().
SOAK = os.environ.get("SOP_SOAK", "") not in ("", "0")


def soak_scale(n: int, factor: int = 10) -> int:
    """n, or n * factor in a soak run (SOP_SOAK=1)."""
    return n * factor if SOAK else n


def pytest_collection_modifyitems(config, items):
    """Tests marked soak run only with SOP_SOAK=1 (pyproject.toml's marker)."""
    if SOAK:
        return
    skip = pytest.mark.skip(reason="soak test: set SOP_SOAK=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


try:
    from hypothesis import settings as _hyp_settings
except ImportError:  # hypothesis is installed by scripts/setup.sh; tests skip without it
    pass
else:
    # Sanitizer runs (SOP_SANITIZER set) are many times slower: no deadline
    # there.  Elsewhere a generous one, so a noisy machine does not fail a run.
    _hyp_settings.register_profile(
        "sop", deadline=None if os.environ.get("SOP_SANITIZER") else 5000,
        max_examples=500 if SOAK else 100, print_blob=True)
    _hyp_settings.load_profile("sop")


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
