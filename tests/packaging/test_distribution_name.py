"""The distribution has a name of its own: ``shipper`` on PyPI is an unrelated project, so every
install instruction must name ``rms-shipper`` (the import package and the command stay
``shipper``)."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from shipper import registry

REPO = Path(__file__).resolve().parents[2]
NAME = registry.DISTRIBUTION

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None

#: every file a user copies an install command from
DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "packaging").rglob("*")),
    *sorted((REPO / "examples" / "plugins").rglob("*")),
    REPO / "shipper" / "service.py",
]
_PIP = re.compile(r"pip3?(?:\.exe)? install\b(?P<args>[^\n`#|&;)]*)")


def _install_targets() -> list[tuple[str, str]]:
    """(where, target) of every ``pip install`` argument that names a distribution (not a
    flag, not a path)."""
    found = []
    for doc in DOCUMENTS:
        if not doc.is_file() or doc.suffix in {".pyc", ".whl"}:
            continue
        text = doc.read_text(encoding="utf-8", errors="replace")
        for m in _PIP.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for arg in (a.strip("\"',") for a in m.group("args").split()):
                if arg.startswith(("-", ".", "/", "\\")) or "/" in arg:
                    continue  # a flag, or a folder (the checkout, the example plugin)
                if not re.match(r"^[A-Za-z]", arg):
                    continue
                found.append((f"{doc.relative_to(REPO)}:{line}", arg))
    return found


def test_every_install_instruction_names_the_distribution_not_the_unrelated_shipper():
    targets = _install_targets()
    ours = [(where, t) for where, t in targets if re.split(r"[\[<>=]", t)[0] == NAME]
    # the Windows service (README, install-task.ps1, the service's own message), systemd
    assert len(ours) >= 4, targets
    wrong = [(where, t) for where, t in targets if re.split(r"[\[<>=]", t)[0] == "shipper"]
    assert not wrong, f"these would install the unrelated PyPI project 'shipper': {wrong}"


def test_the_example_plugin_depends_on_the_distribution_by_its_name():
    if tomllib is None:
        pytest.skip("Python 3.10 has no tomllib")
    plugin = REPO / "examples" / "plugins" / "shipper-logfmt" / "pyproject.toml"
    deps = tomllib.loads(plugin.read_text(encoding="utf-8"))["project"]["dependencies"]
    assert [re.split(r"[\[<>=; ]", d)[0] for d in deps] == [NAME]


def test_pyproject_and_the_registry_agree_on_the_name():
    if tomllib is None:
        pytest.skip("Python 3.10 has no tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == NAME
    assert project["scripts"] == {"shipper": "shipper.cli:main"}


def test_the_installed_distribution_provides_the_shipper_command_and_components():
    try:
        dist = metadata.distribution(NAME)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{NAME} is not installed (pip install -e .)")
    eps = dist.entry_points
    assert [(e.name, e.value) for e in eps if e.group == "console_scripts"] == [
        ("shipper", "shipper.cli:main")
    ]
    outputs = {e.name for e in eps if e.group == "shipper.outputs"}
    assert {"ndjson", "csv", "elasticsearch"} <= outputs
    assert {e.name for e in eps if e.group == "shipper.sources"} >= {"rms_usage"}
    # and the registry names it as the provider of the built-ins
    assert registry.entry("outputs", "ndjson").distribution == NAME
