"""The wheel ships the dashboard: `pip install .` outside the checkout serves `/` and its files.

The wheel is built offline from a copy of what a source distribution holds (pyproject.toml,
README.md, dialer/), installed with `--no-deps` into a fresh venv in a temporary directory,
and run there as `dialer serve` on SQLite. The venv borrows the project venv's dependencies
through a `.pth` line (never its editable `dialer`), so the only `dialer` it can import is the
installed wheel; the served bytes must be the packaged files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import serve_process
from tests.deploy.tools import ROOT

# What a source distribution of the project holds: all a wheel is built from.
SOURCES = ("pyproject.toml", "README.md", "dialer")
# (URL path, file under dialer/web/, content type): the page, what it loads, a vendored library.
SERVED = [
    ("/", "index.html", "text/html"),
    ("/static/js/main.js", "js/main.js", "text/javascript"),
    ("/static/css/app.css", "css/app.css", "text/css"),
    ("/static/favicon.svg", "favicon.svg", "image/svg+xml"),
    ("/static/vendor/uplot/uPlot.esm.js", "vendor/uplot/uPlot.esm.js", "text/javascript"),
    ("/static/vendor/uplot/uPlot.min.css", "vendor/uplot/uPlot.min.css", "text/css"),
]
BOOTSTRAP = "wheel-test-bootstrap-secret-0123456789"


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> None:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"


@dataclass
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def site_packages(self) -> Path:
        (lib,) = (self.venv / "lib").glob("python3*/site-packages")
        return lib


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    # Offline: no index, the build backend of the project venv (setuptools + wheel).
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", dist, src, cwd=tmp,
    )  # fmt: skip
    (wheel,) = dist.glob("dialer-*.whl")
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    out = Installed(wheel, venv)
    _run(
        sys.executable, "-m", "pip", "--python", out.python, "install", "--no-deps", "--no-index",
        "-q", wheel, cwd=tmp,
    )  # fmt: skip
    # The dependencies come from the project venv: a .pth line adds its site-packages after
    # the venv's own. Path lines are not site dirs, so its editable `dialer` is not loaded.
    (out.site_packages() / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return out


def test_the_wheel_holds_the_dashboard_and_the_migrations(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as packaged:
        names = set(packaged.namelist())
    web = {p.relative_to(ROOT).as_posix() for p in (ROOT / "dialer/web").rglob("*") if p.is_file()}
    assert web and web <= names, sorted(web - names)
    assert "dialer/web/vendor/uplot/LICENSE" in names  # the licence ships with the library
    assert "dialer/store/migrations/script.py.mako" in names
    assert "dialer/py.typed" in names


def test_the_installed_dialer_is_the_wheel(installed: Installed, tmp_path: Path) -> None:
    result = subprocess.run(
        [installed.python, "-I", "-c", "import dialer; print(dialer.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(result.stdout.strip()).is_relative_to(installed.site_packages())


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[str]:
    """`dialer serve` of the installed wheel, its console script, outside the checkout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DIALER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}",
        "DIALER_BOOTSTRAP_TOKEN": BOOTSTRAP,
        "DIALER_MAILDIR": str(tmp_path / "maildir"),
        "DIALER_LOG_LEVEL": "WARNING",
    }
    command = [installed.python, "-I", installed.venv / "bin" / "dialer", "serve"]
    with serve_process(command, env, tmp_path) as process:
        yield process.url


def test_the_installed_wheel_serves_the_dashboard(installed: Installed, served: str) -> None:
    with zipfile.ZipFile(installed.wheel) as packaged:
        files = {member: packaged.read(f"dialer/web/{member}") for _, member, _ in SERVED}
    for path, member, content_type in SERVED:
        with urllib.request.urlopen(served + path, timeout=10) as resp:
            assert resp.status == 200, path
            assert resp.headers.get_content_type() == content_type, path
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"], path
            assert resp.read() == files[member], path
    try:
        urllib.request.urlopen(served + "/static/vendor/uplot/LICENSE", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404  # only the listed types are served, as from the checkout
        exc.close()
    else:
        pytest.fail("the LICENSE file was served")
