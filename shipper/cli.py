"""The ``shipper`` command: run, check, setup, plugins.

Exit codes: 0 when everything went; 1 when a file was refused, an output failed or a check
found a problem; 2 when the configuration is unusable. The run summary and all logging go to
standard error, so that ``outputs: [{type: stdout}]`` can be piped.

The configuration models and the pipeline are imported by the commands that use them, not at
the top, so that ``--help`` answers at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from shipper.errors import ConfigError, ShipperError
from shipper.registry import DISTRIBUTION

if TYPE_CHECKING:
    from shipper.config import Config
    from shipper.pipeline import Progress, Summary

log = logging.getLogger("shipper")


def _setup_logging(verbose: bool, rich_console: Any = None) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if rich_console is not None:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=rich_console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("elastic_transport", "urllib3", "elasticsearch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(path: str) -> Config:
    from shipper.config import load_config

    try:
        return load_config(path)
    except ConfigError as e:
        click.echo(f"{path}: configuration error:\n{e}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def main() -> None:
    """Ship Azure RMS usage logs and RMS connector / ECMA2Host event exports as ECS events."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--once", is_flag=True, help="Ship everything present, then exit (backfill).")
@click.option("--no-progress", is_flag=True, help="No progress bar, even on a terminal.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def run(config: str, once: bool, no_progress: bool, verbose: bool) -> None:
    """Follow the inputs until SIGINT/SIGTERM (or, with --once, ship what is there and exit)."""
    from shipper.pipeline import Pipeline, Progress

    cfg = _load(config)
    show_progress = once and not no_progress and sys.stderr.isatty()
    console = None
    if show_progress:
        from rich.console import Console

        console = Console(stderr=True)
    _setup_logging(verbose, console)
    if not cfg.inputs:
        log.warning("%s: no inputs configured; nothing to ship", config)
    progress = Progress()
    display = _ProgressDisplay(progress, console) if show_progress else None
    pipeline = Pipeline(cfg, once=once, progress=progress, on_progress=display and display.update)

    def stop(signum: int, frame: object) -> None:
        log.info("stopping: finishing and committing the batch at hand")
        pipeline.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if not once:
        log.info("following %d input(s); Ctrl+C to stop", len(cfg.inputs))
    try:
        if display:
            with display:
                summary = pipeline.run()
        else:
            summary = pipeline.run()
    except ShipperError as e:
        log.error("%s", e)
        sys.exit(1)
    _print_summary(summary)
    sys.exit(0 if summary.ok else 1)


def _print_summary(s: Summary) -> None:
    parts = [
        f"shipped {s.events:,} events",
        f"{s.duplicates:,} duplicates skipped",
        f"{s.quarantined:,} lines quarantined",
        f"{s.files_refused:,} files refused",
    ]
    if s.dead_lettered:
        parts.append(f"{s.dead_lettered:,} dead-lettered")
    click.echo(
        f"{', '.join(parts)}; {s.files_read:,} files read in {s.seconds:.2f} s"
        f" ({s.rate:,.0f} events/s)",
        err=True,
    )
    for err in s.errors:
        click.echo(f"error: {err}", err=True)


class _ProgressDisplay:
    """A rich progress bar over the bytes to read, with files, records, events/s and ETA."""

    def __init__(self, progress: Progress, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._p = progress
        self._started = time.monotonic()
        self._bar = RichProgress(
            TextColumn("[bold]shipping"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[records]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task("ship", total=None, files="", records="")

    def __enter__(self) -> _ProgressDisplay:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def update(self) -> None:
        p = self._p
        rate = p.records / max(time.monotonic() - self._started, 1e-6)
        self._bar.update(
            self._task,
            total=p.bytes_total or None,
            completed=p.bytes_done,
            files=f"files {p.files_done}/{p.files_total}",
            records=f"{p.records:,} records, {rate:,.0f}/s",
        )


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--outputs", "check_outputs", is_flag=True, help="Also connect to each output.")
def check(config: str, check_outputs: bool) -> None:
    """Validate the configuration (and, with --outputs, reach every output)."""
    cfg = _load(config)
    click.echo(
        f"{config}: OK ({len(cfg.inputs)} input(s), {len(cfg.outputs)} output(s),"
        f" data in {cfg.data_dir})"
    )
    if check_outputs:
        from shipper.status import check_outputs as run_checks

        ok = True
        for line, good in run_checks(cfg):
            click.echo(line, err=not good)
            ok = ok and good
        sys.exit(0 if ok else 1)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--no-kibana", is_flag=True, help="Install index templates only.")
@click.option("--dry-run", is_flag=True, help="Say what would be installed; change nothing.")
def setup(config: str, no_kibana: bool, dry_run: bool) -> None:
    """Install what the outputs need: index templates, lifecycle policy, Kibana objects... (safe
    to repeat)."""
    import inspect

    from shipper import registry

    cfg = _load(config)
    _setup_logging(False)
    targets = []
    for out in cfg.outputs:
        step = getattr(registry.output_module(out), "setup", None)
        if step is not None:
            targets.append((out, step))
    if not targets:
        click.echo(f"{config}: none of the outputs has anything to set up", err=True)
        sys.exit(1)
    ok = True
    for out, step in targets:
        options = {}
        if "kibana" in inspect.signature(step).parameters:
            options["kibana"] = not no_kibana
        try:
            for line in step(out, cfg.data_path, dry_run, **options):
                click.echo(f"{out.type}: {line}")
        except ShipperError as e:
            click.echo(f"{out.type}: {e}", err=True)
            ok = False
    sys.exit(0 if ok else 1)


@main.command()
def plugins() -> None:
    """List the installed sources, formats and outputs, and what provides each (exit 1 when
    one of them cannot be imported)."""
    from shipper import registry

    ok = True
    for kind in registry.KINDS:
        click.echo(f"{kind}:")
        for name, found in registry.entries(kind).items():
            click.echo(f"  {name:<16} {found.provider:<24} {found.value}")
            try:
                registry.load(kind, name)
            except ShipperError as e:
                click.echo(f"  {name}: {e}", err=True)
                ok = False
    sys.exit(0 if ok else 1)


@main.group()
def state() -> None:
    """Inspect or deliberately replace the checkpoint (see RELIABILITY.md)."""


@state.command("reset")
@click.argument("config", type=click.Path(dir_okay=False))
def state_reset(config: str) -> None:
    """Set the checkpoint aside (renamed, not deleted) so that the next run starts a new one.

    For a checkpoint that `shipper run` refuses as empty or damaged. The next run reads every
    file again: outputs that dedupe by event id (Elasticsearch, OpenSearch) skip what they
    already hold; a file output gets those events a second time.
    """
    from filelock import FileLock, Timeout

    from shipper.state.store import set_aside

    cfg = _load(config)
    if not (cfg.data_path / "checkpoint.sqlite").exists():
        click.echo(f"{cfg.data_path}: no checkpoint; nothing to do")
        return
    lock = FileLock(cfg.data_path / "shipper.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise click.ClickException(
            f"data_dir {cfg.data_path} is in use by a running shipper; stop it first"
        ) from None
    try:
        aside = set_aside(cfg.data_path)
    finally:
        lock.release()
    click.echo(f"checkpoint set aside as {aside}; the next run starts a new one")


# `shipper service install|remove`: the Windows service (shipper/service.py; Windows only, a
# clear message elsewhere). The module imports nothing heavy: --help stays quick.
from shipper.service import service_command  # noqa: E402

main.add_command(service_command)


if __name__ == "__main__":
    main()
