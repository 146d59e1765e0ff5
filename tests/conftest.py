"""Shared test helpers: building RMS usage files, locating ../shared, running the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

FIELDS_17 = [
    "date", "time", "row-id", "request-type", "user-id", "result", "correlation-id",
    "content-id", "owner-email", "issuer", "template-id", "file-name", "date-published",
    "c-info", "c-ip", "admin-action", "acting-as-user",
]  # fmt: skip
FIELDS_15 = FIELDS_17[:15]


def rms_row(n: int, fields: Sequence[str] = FIELDS_17, **over: str) -> list[str]:
    """A plausible record whose row-id is derived from ``n`` (so tests can count ids)."""
    values = {
        "date": "2024-03-04",
        "time": f"{9 + n // 3600 % 10:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
        "row-id": f"{n:08x}-0000-4000-8000-000000000000",
        "request-type": "AcquireLicense",
        "user-id": "'joe@contoso.com'",
        "result": "'Success'",
        "correlation-id": f"{n:08x}-1111-4000-8000-000000000000",
        "content-id": "{4D1C2B3A-0000-4000-8000-00000000ABCD}",
        "owner-email": "alice@contoso.com",
        "issuer": "alice@contoso.com",
        "template-id": "",
        "file-name": "Q3 Forecast.docx",
        "date-published": "2024-01-15T10:00:00",
        "c-info": "'MSIPC;version=1.0.4008.0;AppName=WINWORD.EXE;AppVersion=16.0.17328.20162;"
        "AppArch=x64;OSName=Windows;OSVersion=10.0.22631;OSArch=amd64'",
        "c-ip": "203.0.113.7",
        "admin-action": "",
        "acting-as-user": "",
    }
    values.update({k.replace("_", "-"): v for k, v in over.items()})
    return [values.get(f, "x") for f in fields]


def rms_text(
    rows: Sequence[Sequence[str]], fields: Sequence[str] = FIELDS_17, newline: str = "\n"
) -> str:
    lines = ["#Software: RMS", "#Version: 1.1", "#Fields: " + "\t".join(fields)]
    lines += ["\t".join(r) for r in rows]
    return newline.join(lines) + newline


@pytest.fixture
def write_rms() -> Callable[..., Path]:
    """Write an RMS usage file: ``write_rms(path, ids, fields=..., encoding=..., newline=...)``."""

    def write(
        path: Path,
        ids: Sequence[int],
        fields: Sequence[str] = FIELDS_17,
        encoding: str = "utf-8",
        newline: str = "\n",
        mode: str = "wb",
    ) -> Path:
        text = rms_text([rms_row(i, fields) for i in ids], fields, newline)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as f:
            f.write(text.encode(encoding))
        return path

    return write


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED


def closed_port() -> int:
    """A loopback port nobody listens on (free a moment ago): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_env(env: dict[str, str] | None) -> dict[str, str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return full_env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``shipper`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli", *args],
        cwd=cwd,
        env=_cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_shipper(config: Path, cwd: Path) -> subprocess.Popen[str]:
    """``shipper run CONFIG`` following, as a user starts it; its stderr kept for the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "run", str(config)],
        cwd=cwd,
        env=_cli_env(None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli
