"""``shipper`` as a Windows service: follow mode under the Service Control Manager (SCM).

Built on pywin32's service framework (the optional extra ``rms-shipper[windows]``), hosted by the
Python interpreter itself: the service's command line is ``python.exe -m shipper.service
--config ... --home ...``, and this module hands the process to the SCM with
``StartServiceCtrlDispatcher``. Not pywin32's usual ``pythonservice.exe`` host, which needs
pywin32's DLLs copied beside it or on the system path and breaks in virtual environments.
A virtual environment's ``python.exe`` is only a launcher that starts the real interpreter as
a child (the SCM would wait for an answer from the launcher forever), so in a venv the service
runs the base interpreter with the venv's ``site-packages`` on ``PYTHONPATH``, set in the
service's own environment.

Data lives under ``%ProgramData%\\shipper`` (the "home", which install makes readable by the
service's account and administrators only): the service starts there, so the default
``data_dir`` (``.shipper-data``), relative paths in the config and the log file
(``logs\\shipper.log``; a service has no console) all land in it. Stopping the service (or
shutting Windows down) does what Ctrl+C does to ``shipper run``: the batch at hand is delivered
and committed, then the process exits. A run that fails raises out of ``SvcDoRun``, so the SCM
records a failure and the recovery actions set at install (restart after 10, 30, 60 s) apply.

Everything but the pywin32 glue (``ServiceRunner``, the command line, the interpreter choice)
is plain Python, imported and tested on any platform.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import click

from shipper.errors import ShipperError
from shipper.redact import mask, remember

SERVICE_NAME = "shipper"
DISPLAY_NAME = "shipper (Azure RMS logs to ECS)"
DESCRIPTION = (
    "Ships Azure RMS usage logs and RMS connector / ECMA2Host event exports as ECS events."
)
#: how long the SCM is told to wait for the batch at hand to be committed
STOP_WAIT_MS = 120_000

log = logging.getLogger("shipper")


class ServiceError(ShipperError):
    """The service cannot be installed, removed or started (message says why)."""


def default_home(environ: dict[str, str] | None = None) -> Path:
    """``%ProgramData%\\shipper``: machine-wide data that services may write."""
    env = os.environ if environ is None else environ
    return Path(env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData") / "shipper"


# --- the service's body, free of Windows ----------------------------------------------------


class ServiceRunner:
    """Runs the pipeline in follow mode in the service's home until ``stop()``.

    ``stop()`` may come from another thread (the SCM's control handler) at any moment, even
    before the pipeline exists; the pipeline then finishes and commits the batch at hand.
    """

    def __init__(self, config: Path, home: Path, log_to_file: bool = True) -> None:
        self.config = Path(config)
        self.home = Path(home)
        self.log_to_file = log_to_file
        self._lock = threading.Lock()
        self._stopping = False
        self._pipeline = None

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._pipeline is not None:
                self._pipeline.stop()

    def run(self) -> None:
        """Returns after a stop, with everything delivered committed; raises ShipperError
        (a bad config, an output that cannot work) so that the SCM sees a failure."""
        from shipper.config import load_config
        from shipper.pipeline import Pipeline

        self.home.mkdir(parents=True, exist_ok=True)
        os.chdir(self.home)
        if self.log_to_file:
            _log_to_file(self.home / "logs" / "shipper.log")
        log.info("service starting: config %s, home %s", self.config, self.home)
        cfg = load_config(str(self.config))
        pipeline = Pipeline(cfg, once=False)
        with self._lock:
            self._pipeline = pipeline
            if self._stopping:
                pipeline.stop()
        summary = pipeline.run()
        log.info(
            "service stopped: shipped %d events, %d duplicates skipped, %d lines quarantined",
            summary.events,
            summary.duplicates,
            summary.quarantined,
        )
        if not summary.ok:
            raise ServiceError("; ".join(map(str, summary.errors)) or "the run failed")


def _log_to_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)  # (an output quiets its own client library's loggers)


# --- what the SCM runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """The service's command line and the environment variables set for it."""

    exe: str
    args: str
    environment: dict[str, str]


def launch(
    config: Path,
    home: Path,
    name: str = SERVICE_NAME,
    executable: str | None = None,
    base_executable: str | None = None,
    site_packages: list[str] | None = None,
) -> Launch:
    """How the SCM starts the service. In a venv (``executable`` differs from the base
    interpreter) the base interpreter runs, with the venv's site-packages on PYTHONPATH."""
    import sysconfig

    exe = executable or sys.executable
    base = base_executable or getattr(sys, "_base_executable", exe) or exe
    env: dict[str, str] = {}
    if os.path.normcase(os.path.abspath(base)) != os.path.normcase(os.path.abspath(exe)):
        paths = site_packages
        if paths is None:
            paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        exe = base
    argv = ["-m", "shipper.service", "--config", str(config), "--home", str(home)]
    if name != SERVICE_NAME:
        argv += ["--name", name]
    args = subprocess.list2cmdline(argv)
    return Launch(exe=exe, args=args, environment=env)


#: well-known SIDs (names differ by language): LocalSystem, BUILTIN\Administrators
_SYSTEM, _ADMINISTRATORS = "*S-1-5-18", "*S-1-5-32-544"


def acl_command(home: Path, user: str | None) -> list[str]:
    """icacls arguments that make the home readable by the service and administrators only:
    its checkpoint, logs and (usually) its config with secrets are nobody else's business,
    while %ProgramData%'s inherited ACL would let every local user read them."""
    grants = [f"{_SYSTEM}:(OI)(CI)F", f"{_ADMINISTRATORS}:(OI)(CI)F"]
    if user:
        grants.append(f"{user}:(OI)(CI)M")
    return ["icacls", str(home), "/inheritance:r", "/grant:r", *grants]


def _require_windows() -> None:
    if sys.platform != "win32":
        raise ServiceError(
            "`shipper service` installs a Windows service and works on Windows only; on Linux"
            " use packaging/systemd/shipper.service, in containers packaging/docker/Dockerfile"
        )


def _pywin32():  # type: ignore[no-untyped-def]
    try:
        import servicemanager  # noqa: F401
        import win32service
        import win32serviceutil
    except ImportError:
        raise ServiceError(
            'the Windows service needs pywin32: py -m pip install "rms-shipper[windows]"'
        ) from None
    return win32service, win32serviceutil


def install(
    config: Path,
    name: str = SERVICE_NAME,
    home: Path | None = None,
    start: str = "auto",
    user: str | None = None,
    password: str | None = None,
) -> str:
    """Registers the service (not started); returns a line saying what was done."""
    _require_windows()
    win32service, win32serviceutil = _pywin32()
    config = Path(config).resolve()
    if not config.is_file():
        raise ServiceError(f"{config}: no such configuration file")
    home = Path(home) if home else default_home()
    home.mkdir(parents=True, exist_ok=True)
    acl = subprocess.run(acl_command(home, user), capture_output=True, text=True, timeout=60)
    if acl.returncode != 0:
        raise ServiceError(f"cannot restrict access to {home}: {acl.stdout}{acl.stderr}".strip())
    how = launch(config, home, name)
    start_type = {
        "auto": win32service.SERVICE_AUTO_START,
        "delayed": win32service.SERVICE_AUTO_START,
        "manual": win32service.SERVICE_DEMAND_START,
    }[start]
    win32serviceutil.InstallService(
        "shipper.service.ShipperService",
        name,
        DISPLAY_NAME if name == SERVICE_NAME else f"{DISPLAY_NAME} [{name}]",
        startType=start_type,
        userName=user,
        password=password,
        exeName=how.exe,
        exeArgs=how.args,
        description=DESCRIPTION,
        delayedstart=start == "delayed",
    )
    # Messages logged with servicemanager.LogInfoMsg read well in Event Viewer only with the
    # source registered against the message table inside servicemanager's module.
    import servicemanager
    import win32evtlogutil

    win32evtlogutil.AddSourceToRegistry(name, servicemanager.__file__)
    if how.environment:
        import winreg

        key = winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE,
            rf"SYSTEM\CurrentControlSet\Services\{name}",
            0,
            winreg.KEY_SET_VALUE,
        )
        with key:
            values = [f"{k}={v}" for k, v in how.environment.items()]
            winreg.SetValueEx(key, "Environment", 0, winreg.REG_MULTI_SZ, values)
    # Restart after a failure (10 s, 30 s, then every 60 s; the count resets after a day),
    # also when the service stopped itself with an error rather than crashing.
    subprocess.run(
        ["sc.exe", "failure", name, "reset=", "86400",
         "actions=", "restart/10000/restart/30000/restart/60000"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["sc.exe", "failureflag", name, "1"], check=True, capture_output=True, timeout=30
    )
    return (
        f"service {name!r} installed: {how.exe} {how.args}; data in {home};"
        f" start it with: sc.exe start {name}"
    )


def remove(name: str = SERVICE_NAME) -> str:
    """Stops the service if it runs (committing the batch at hand) and unregisters it."""
    _require_windows()
    win32service, win32serviceutil = _pywin32()
    try:
        win32serviceutil.StopServiceWithDeps(name, waitSecs=STOP_WAIT_MS // 1000)
    except Exception:  # noqa: BLE001 - not running (or not installed: RemoveService says so)
        pass
    try:
        win32serviceutil.RemoveService(name)
    except Exception as e:  # pywintypes.error
        raise ServiceError(f"cannot remove service {name!r}: {e}") from None
    try:
        import win32evtlogutil

        win32evtlogutil.RemoveSourceFromRegistry(name)
    except Exception:  # noqa: BLE001 - the event source was never registered
        pass
    return f"service {name!r} removed"


def _service_class():  # type: ignore[no-untyped-def]
    win32service, win32serviceutil = _pywin32()
    import servicemanager

    class ShipperService(win32serviceutil.ServiceFramework):  # type: ignore[misc, name-defined]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION
        runner: ServiceRunner  # set by main() before the SCM starts the service

        def SvcDoRun(self) -> None:  # noqa: N802 - pywin32's names
            servicemanager.LogInfoMsg(f"{self._svc_name_}: starting ({self.runner.config})")
            try:
                self.runner.run()
            except Exception as e:
                log.exception("service failed")
                servicemanager.LogErrorMsg(f"{self._svc_name_}: {e}")
                raise
            servicemanager.LogInfoMsg(f"{self._svc_name_}: stopped, everything committed")

        def SvcStop(self) -> None:  # noqa: N802
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_MS)
            self.runner.stop()

        def SvcShutdown(self) -> None:  # noqa: N802
            self.SvcStop()

    return ShipperService


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # ``shipper.service.ShipperService`` exists only where pywin32 does.
    if name == "ShipperService":
        return _service_class()
    raise AttributeError(name)


# --- `shipper service install|remove` --------------------------------------------------------


@click.group("service")
def service_command() -> None:
    """Install or remove shipper as a Windows service (Windows only)."""


@service_command.command("install")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=r"Configuration file [default: %ProgramData%\shipper\shipper.yaml].",
)
@click.option("--name", default=SERVICE_NAME, show_default=True, help="Service name.")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=r"Working directory: data, logs [default: %ProgramData%\shipper].",
)
@click.option(
    "--start",
    type=click.Choice(["auto", "delayed", "manual"]),
    default="auto",
    show_default=True,
    help="Start type.",
)
@click.option("--user", default=None, help=r"Account to run as (DOMAIN\user); default LocalSystem.")
@click.option(
    "--password-file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="File holding that account's password (else asked for).",
)
def install_command(
    config: Path | None,
    name: str,
    home: Path | None,
    start: str,
    user: str | None,
    password_file: click.utils.LazyFile | None,
) -> None:
    """Register the service (start it with: sc.exe start shipper)."""
    try:
        _require_windows()
        home = home or default_home()
        password = None
        if user:
            if password_file is not None:
                password = password_file.read().rstrip("\r\n")
            else:
                password = click.prompt(f"password of {user}", hide_input=True)
            remember({"password": password})  # an error quoting it prints it masked
        line = install(config or home / "shipper.yaml", name, home, start, user, password)
    except ServiceError as e:
        click.echo(mask(f"shipper service install: {e}"), err=True)
        sys.exit(1)
    click.echo(line)


@service_command.command("remove")
@click.option("--name", default=SERVICE_NAME, show_default=True, help="Service name.")
def remove_command(name: str) -> None:
    """Stop the service (committing the batch at hand) and unregister it."""
    try:
        line = remove(name)
    except ServiceError as e:
        click.echo(mask(f"shipper service remove: {e}"), err=True)
        sys.exit(1)
    click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the service process, as started by the SCM."""
    parser = argparse.ArgumentParser(prog="python -m shipper.service")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--name", default=SERVICE_NAME)
    args = parser.parse_args(argv)
    try:
        _require_windows()
        cls = _service_class()
    except ServiceError as e:
        sys.exit(f"shipper.service: {e}")
    cls._svc_name_ = args.name
    cls.runner = ServiceRunner(args.config, args.home or default_home())
    import servicemanager

    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(cls)
    try:
        servicemanager.StartServiceCtrlDispatcher()
    except Exception as e:  # pywintypes.error
        if getattr(e, "winerror", None) == 1063:  # ERROR_FAILED_SERVICE_CONTROLLER_CONNECT
            sys.exit(
                "shipper.service is started by the Service Control Manager (sc.exe start"
                f" {args.name}); to run in a console, use: shipper run CONFIG"
            )
        raise


if __name__ == "__main__":
    main()
