"""What a member installs: the wheel holds every module of the package and the four
top-level files, declares the same dependencies as requirements.txt, and its two
commands start. (The README's install commands run this same pyproject.toml.)"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, WAIT

TOP_LEVEL = ("client.py", "server.py", "crypto_utils.py", "netinfo.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=180)
    if built.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{built.stdout}\n{built.stderr}", pytrace=False)
    [path] = out.glob("securex-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_the_wheel_holds_every_module_and_nothing_from_tests(wheel):
    names = set(wheel.namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "securex").rglob("*.py")}
    assert sources - names == set(), "modules missing from the wheel (a package without __init__.py?)"
    assert set(TOP_LEVEL) <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_the_wheel_declares_the_commands_and_the_requirements(wheel):
    [entry_points] = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    commands = wheel.read(entry_points).decode()
    assert re.search(r"^securex = client:main$", commands, re.M)
    assert re.search(r"^securex-server = server:main$", commands, re.M)
    [metadata] = [n for n in wheel.namelist() if n.endswith("METADATA")]
    declared = {requirement(line.split(":", 1)[1]) for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    required = {requirement(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert declared == required


def requirement(text: str) -> tuple[str, frozenset[str]]:
    """"zeroconf>=0.131,<1" and "zeroconf<1,>=0.131" alike: (name, its version bounds)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(.*?)\s*", text)
    return match.group(1).lower(), frozenset(s.strip() for s in match.group(2).split(",") if s.strip())


@pytest.mark.parametrize("command", ["securex", "securex-server"])
def test_the_installed_commands_start(command):
    script = Path(sys.executable).parent / command
    if not script.exists():
        pytest.skip(f"{command} is not installed in this environment (pip install -e . puts it there)")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0 and "usage:" in result.stdout
