"""`pip install .` installs the `sop` command-line tool too: the wheel built
from this source tree carries the tool in its scripts folder
(sop-<version>.data/scripts/sop, which pip installs into the environment's
bin folder), executable, and the tool runs.

The wheel is built with `pip wheel --no-build-isolation` (nothing is
installed anywhere), reusing pyproject's persistent build folder, so a
repeated run is incremental.  Needs scikit-build-core (scripts/setup.sh
installs it)."""

import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _version() -> str:
    m = re.search(r'#define\s+SOP_VERSION_STRING\s+"([^"]+)"', (ROOT / "include" / "sop.h").read_text())
    assert m
    return m.group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("scikit_build_core", reason="scikit-build-core is not installed (scripts/setup.sh)")
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                          "--no-index", "-q", "-w", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"pip wheel failed:\n{res.stdout}\n{res.stderr}"
    wheels = list(out.glob("sop-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_installs_the_sop_tool(wheel, tmp_path):
    version = _version()
    script = f"sop-{version}.data/scripts/sop"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert script in names, f"no {script} in the wheel: {names}"
        info = z.getinfo(script)
        mode = info.external_attr >> 16
        assert mode & stat.S_IXUSR, f"{script} is not executable in the wheel (mode {oct(mode)})"
        record = z.read(f"sop-{version}.dist-info/RECORD").decode()
        assert script in record
        # the extension is there too, and no C sources
        assert any(re.match(r"sop/_sop\..*\.so$", n) for n in names)
        assert not any(n.endswith((".c", ".h")) for n in names)
        z.extract(script, tmp_path)
    exe = tmp_path / script
    os.chmod(exe, mode & 0o777)
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and version in res.stdout, res
    res = subprocess.run([str(exe), "dump", str(tmp_path / "db"), "people", "abc"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "abc" in res.stderr and not (tmp_path / "db").exists()
