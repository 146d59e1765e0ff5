"""The ``shipper`` command: run, check, setup, plugins.

Exit codes: 0 when everything went (in follow mode: stopped on request, everything acknowledged
committed); 1 when a file was refused, an output failed, the data dir is unusable or a check
found a problem; 2 when the configuration is unusable; 128 + the signal's number (130 SIGINT,
143 SIGTERM) when a signal cut the work short: ``--once`` interrupted, or a shutdown forced by
a second signal or by ``pipeline.shutdown_timeout`` (``shipper.stopping``). The run summary and
all logging go to standard error, so that ``outputs: [{type: stdout}]`` can be piped.

The configuration models and the pipeline are imported by the commands that use them, not at
the top, so that ``--help`` answers at once.
"""

from __future__ import annotations

import logging
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


def _echo(line: str, err: bool = False) -> None:
    """Every line the command prints goes through here, masked (``shipper.redact``): an error
    quotes an output's name, and that may be a URL with its password."""
    from shipper.redact import mask

    click.echo(mask(line), err=err)


def _setup_logging(verbose: bool, rich_console: Any = None, log_format: str = "text") -> None:
    from shipper.logs import setup_logging

    setup_logging(verbose, "json" if log_format == "json" else "text", rich_console)


def _load(path: str, as_log: bool = False) -> Config:
    from shipper.config import load_config

    try:
        return load_config(path)
    except ConfigError as e:
        if as_log:
            log.error("%s: configuration error: %s", path, str(e).replace("\n", "; "))
        else:
            _echo(f"{path}: configuration error:\n{e}", err=True)
        sys.exit(2)


class _Commands(click.Group):
    """The command group, with a Ctrl-C that no command handles itself (``run`` does) ending
    the process as the shell expects of one stopped by SIGINT: exit 130, not click's
    "Aborted!" and 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(err=True)  # off the ^C the terminal echoed
            sys.exit(130)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def main() -> None:
    """Ship Azure RMS usage logs and RMS connector / ECMA2Host event exports as ECS events."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--once", is_flag=True, help="Ship everything present, then exit (backfill).")
@click.option("--no-progress", is_flag=True, help="No progress bar, even on a terminal.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: time (ISO 8601, with offset), level, message; json: one ECS JSON object a line.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def run(config: str, once: bool, no_progress: bool, log_format: str, verbose: bool) -> None:
    """Follow the inputs until SIGINT/SIGTERM (or, with --once, ship what is there and exit).

    A first SIGINT/SIGTERM commits what the outputs acknowledged and exits within
    pipeline.shutdown_timeout; a second exits at once. SIGHUP is logged and ignored."""
    from shipper.stopping import StopRequests, exit_code

    # first, before the slow part of starting (imports, the configuration, the checkpoint): a
    # stop from then on is an interruption like any other, not click's "Aborted!"
    stops = StopRequests(lambda: None)
    stops.install()
    from shipper.pipeline import Pipeline, Progress
    from shipper.preflight import data_dir_problem, empty_patterns

    as_log = log_format == "json"  # every line on stderr a JSON object, for the collector
    _setup_logging(verbose, None, log_format)  # for what loading the configuration says
    cfg = _load(config, as_log)
    show_progress = (
        once and not no_progress and log_format == "text" and sys.stderr.isatty()
    )  # a bar between JSON lines would corrupt them
    console = None
    if show_progress:
        from rich.console import Console

        console = Console(stderr=True)
        _setup_logging(verbose, console, log_format)
    if not cfg.inputs:
        log.warning("%s: no inputs configured; nothing to ship", config)
    problem = data_dir_problem(cfg.data_path)
    if problem is not None:
        log.error("%s", problem)
        sys.exit(1)
    for line in empty_patterns(cfg.inputs):
        log.warning("%s%s", line, "" if once else " (yet); watching it")
    progress = Progress()
    display = _ProgressDisplay(progress, console) if show_progress else None
    pipeline = Pipeline(cfg, once=once, progress=progress, on_progress=display and display.update)
    stops.retarget(pipeline.stop, cfg.pipeline.shutdown_timeout)
    if stops.signum is not None:  # stopped while starting
        _say(
            f"interrupted by {stops.name} while starting: nothing shipped", as_log, logging.WARNING
        )
        sys.exit(exit_code(stops.signum) if once else 0)
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
    except OSError as e:  # the data dir went away or filled up under us: one line
        log.error("%s: %s", getattr(e, "filename", None) or cfg.data_path, e.strerror or e)
        sys.exit(1)
    finally:
        stops.finished()
    _print_summary(summary, as_log)
    if stops.signum is not None and once and summary.stopped:
        _print_interrupted(stops.name, summary, progress, as_log)
        sys.exit(exit_code(stops.signum))
    sys.exit(0 if summary.ok else 1)


def _say(line: str, as_log: bool, level: int = logging.INFO) -> None:
    """A closing line: plain on standard error, or a log record when the log is JSON."""
    if as_log:
        log.log(level, "%s", line)
    else:
        _echo(line, err=True)


def _print_summary(s: Summary, as_log: bool = False) -> None:
    parts = [
        f"shipped {s.events:,} events",
        f"{s.duplicates:,} duplicates skipped",
        f"{s.quarantined:,} lines quarantined",
        f"{s.files_refused:,} files refused",
    ]
    if s.dead_lettered:
        parts.append(f"{s.dead_lettered:,} dead-lettered")
    _say(
        f"{', '.join(parts)}; {s.files_read:,} files read in {s.seconds:.2f} s"
        f" ({s.rate:,.0f} events/s)",
        as_log,
    )
    for err in s.errors:
        _say(f"error: {err}", as_log, logging.ERROR)


def _print_interrupted(signame: str, s: Summary, p: Progress, as_log: bool = False) -> None:
    """How far an interrupted ``--once`` got, and that a rerun continues from there."""
    left = max(p.files_total - p.files_done, 0)  # not started, or not read to their end
    refused = f", {s.files_refused:,} refused" if s.files_refused else ""
    pending = f"; {s.uncommitted:,} events sent but not committed" if s.uncommitted else ""
    _say(
        f"interrupted by {signame}: {s.events:,} events shipped; {s.files_read:,} of"
        f" {p.files_total:,} files read{refused}, {left:,} left{pending}. Run the same command"
        " again to continue from there (nothing is lost or shipped twice).",
        as_log,
        logging.WARNING,
    )


def _short(n: float) -> str:
    """A count in at most 5 characters: 999, 12.3k, 123k, 4.5M."""
    for limit, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            v = n / limit
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


class _ProgressDisplay:
    """A rich progress bar over the bytes to read, with files, records/s and time left.

    It fits 80 columns (fixed-width bar, short figures), and it appears only once the first
    scan has counted the bytes to read, so its first frame already shows the total.
    """

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
        self._live = False
        self._bar = RichProgress(
            TextColumn("[bold]shipping"),
            BarColumn(bar_width=12),
            DownloadColumn(),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task("ship", total=None, files="", rate="")

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._bar.__exit__(*exc)

    def update(self) -> None:
        p = self._p
        rate = p.records / max(time.monotonic() - self._started, 1e-6)
        self._bar.update(
            self._task,
            total=p.bytes_total,
            completed=p.bytes_done,
            files=f"{p.files_done}/{p.files_total} files",
            rate=f"{_short(rate)} rec/s",
        )
        if not self._live:
            self._live = True
            self._bar.__enter__()


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--outputs", "check_outputs", is_flag=True, help="Also connect to each output.")
@click.option(
    "--skip-local",
    is_flag=True,
    help="Do not check the data dir and input folders (a configuration for another machine).",
)
def check(config: str, check_outputs: bool, skip_local: bool) -> None:
    """Validate the configuration, that the data dir can be created and written and that every
    input pattern finds files (and, with --outputs, reach every output). Exit 1 on any problem.
    Nothing is created or changed."""
    from shipper.check import reader_problems
    from shipper.preflight import data_dir_problem, empty_patterns

    _setup_logging(False)  # for what loading the configuration says
    cfg = _load(config)
    _echo(
        f"{config}: OK ({len(cfg.inputs)} input(s), {len(cfg.outputs)} output(s),"
        f" data in {cfg.data_dir})"
    )
    ok = True
    problems: list[str | None] = list(reader_problems(cfg))  # plugins are this machine's
    if not skip_local:
        problems += [data_dir_problem(cfg.data_path, create=False), *empty_patterns(cfg.inputs)]
    for line in problems:
        if line is not None:
            _echo(f"error: {line}", err=True)
            ok = False
    if check_outputs:
        from shipper.check import check_outputs as run_checks

        for line, good in run_checks(cfg):
            _echo(line, err=not good)
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
        _echo(f"{config}: none of the outputs has anything to set up", err=True)
        sys.exit(1)
    ok = True
    for out, step in targets:
        options = {}
        if "kibana" in inspect.signature(step).parameters:
            options["kibana"] = not no_kibana
        try:
            for line in step(out, cfg.data_path, dry_run, **options):
                _echo(f"{out.type}: {line}")
        except ShipperError as e:
            _echo(f"{out.type}: {e}", err=True)
            ok = False
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def status(config: str, as_json: bool) -> None:
    """Per-file progress and per-output state, from the checkpoint (read-only: safe while
    another shipper runs; it takes no lock and writes nothing)."""
    from shipper.status import data_dir_readable, read_status, render_json, render_text

    cfg = _load(config)
    problem = data_dir_readable(cfg.data_path)
    if problem is not None:
        _echo(problem, err=True)
        sys.exit(1)
    try:
        st = read_status(cfg)
    except ShipperError as e:
        _echo(str(e), err=True)
        sys.exit(1)
    if as_json:
        _echo(render_json(st))
    else:
        for line in render_text(st):
            _echo(line)


@main.command()
def plugins() -> None:
    """List the installed sources, formats, outputs and normalisers, and what provides each
    (exit 1 when one of them cannot be imported)."""
    from shipper import registry

    ok = True
    for kind in registry.KINDS:
        _echo(f"{kind}:")
        for name, found in registry.entries(kind).items():
            _echo(f"  {name:<16} {found.provider:<24} {found.value}")
            try:
                registry.load(kind, name)
            except ShipperError as e:
                _echo(f"  {name}: {e}", err=True)
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
    from filelock import Timeout

    from shipper.private import data_dir_lock
    from shipper.state.store import set_aside

    cfg = _load(config)
    if not (cfg.data_path / "checkpoint.sqlite").exists():
        _echo(f"{cfg.data_path}: no checkpoint; nothing to do")
        return
    lock = data_dir_lock(cfg.data_path)
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
    _echo(f"checkpoint set aside as {aside}; the next run starts a new one")


# `shipper service install|remove`: the Windows service (shipper/service.py; Windows only, a
# clear message elsewhere). The module imports nothing heavy: --help stays quick.
from shipper.service import service_command  # noqa: E402

main.add_command(service_command)


if __name__ == "__main__":
    main()
