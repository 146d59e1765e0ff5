"""CSV output: Microsoft's ``logparser -i:w3c -o:csv "SELECT * INTO AllLogs.csv FROM *.log"``,
done right.

* Columns: for ``azure_rms.usage``, by default (``columns: w3c``) the W3C field names in
  Microsoft's documented order, filled from the normalised event (the map is data,
  ``mappings/csv/azure_rms_usage.yaml``); or any list of ECS fields. Events of other datasets
  go to their own file (``other_path``, ``{dataset}`` in it, columns ``other_columns``) or are
  skipped (``other_datasets: skip``; they count as delivered: the output did what it was told).
* A header once per file: written when a file is empty (new, rotated, or cut back to nothing).
* RFC 4180 through the standard ``csv`` module: CRLF line ends, fields quoted when they hold a
  comma, a quote or a line break, quotes doubled. UTF-8, with a byte-order mark at the start of
  each file when ``bom: true`` (Excel then reads the file as UTF-8, not the ANSI code page).
* Formula injection: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is prefixed with
  ``'`` so that a spreadsheet shows it as text instead of evaluating it (OWASP's advice; a user
  id or file name is attacker-controlled).
* Exactly once and rotation as the NDJSON output: each file is an ``appendfile.AppendFile``; the
  ``Ack`` state holds every file's committed length and identity. A file of another dataset
  that is not in a committed state was created after the last commit (a crash before the
  commit): it is cut back to nothing on start. Before any state was committed (first start),
  files already there are appended to, never cut.
"""

from __future__ import annotations

import csv
import glob
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from shipper.errors import OutputFailed, ShipperError
from shipper.mappings import load_yaml
from shipper.outputs.appendfile import AppendFile, check_writable
from shipper.outputs.base import Ack, EventBatch, ecs_field
from shipper.private import FILE_MODE
from shipper.settings import FileMode, Size
from shipper.settings import Settings as _Settings

W3C_MAP = "csv/azure_rms_usage.yaml"
#: columns for events of other datasets, unless configured
OTHER_COLUMNS = [
    "@timestamp",
    "event.dataset",
    "event.id",
    "event.code",
    "event.action",
    "event.outcome",
    "host.name",
    "user.name",
    "message",
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_BOM = "\ufeff".encode()
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Settings(_Settings):
    """Events as CSV: W3C columns for RMS usage, ECS fields for the rest."""

    type: Literal["csv"] = "csv"
    path: str = Field(default="out/rms_usage.csv", description="file of azure_rms.usage events")
    columns: Literal["w3c"] | list[str] = Field(
        default="w3c",
        description="w3c: Microsoft's usage-log fields in their documented order; or ECS fields",
    )
    other_datasets: Literal["file", "skip"] = Field(
        default="file", description="events of other datasets: to their own file, or skipped"
    )
    other_path: str = Field(
        default="out/{dataset}.csv", description="file of each other dataset ({dataset})"
    )
    other_columns: list[str] = Field(
        default_factory=lambda: list(OTHER_COLUMNS), min_length=1, description="ECS fields"
    )
    bom: bool = Field(default=False, description="start each file with a UTF-8 BOM (Excel)")
    max_bytes: Size = Field(default=256 * 10**6, gt=0, description="rotate at this size")
    keep_files: int = Field(default=10, ge=1, description="rotated files to keep")
    file_mode: FileMode = Field(default=FILE_MODE, description='of the files created ("0640")')

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("name at least one ECS field (or use w3c)")
        return v

    @model_validator(mode="after")
    def _paths(self) -> Settings:
        if self.other_datasets == "file" and self.other_path.replace("{dataset}", "x") == (
            self.path
        ):
            raise ValueError("other_path must differ from path (use {dataset} in it)")
        return self


Cell = Callable[[dict[str, Any]], str]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return orjson.dumps(value).decode()


def _ecs_cell(field: str) -> Cell:
    return lambda event: _text(ecs_field(event, field))


def _w3c_cell(spec: dict[str, Any]) -> Cell:
    fields: list[str] = spec["from"]
    part = spec.get("part")
    values: dict[str, str] = spec.get("values") or {}

    def cell(event: dict[str, Any]) -> str:
        for field in fields:
            value = ecs_field(event, field)
            if value is not None:
                break
        else:
            return ""
        text = _text(value)
        if part == "date":
            return text[:10]
        if part == "time":
            return text[11:19]
        return values.get(text, text)

    return cell


def w3c_columns() -> list[tuple[str, Cell]]:
    """(column name, cell) in Microsoft's documented order."""
    spec = load_yaml(W3C_MAP)
    return [(name, _w3c_cell(s)) for name, s in spec["columns"].items()]


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell


class _Sheet:
    """One CSV file and its columns."""

    def __init__(self, file: AppendFile, columns: list[tuple[str, Cell]], bom: bool) -> None:
        self.file = file
        self.names = [name for name, _ in columns]
        self.cells = [cell for _, cell in columns]
        self.bom = bom

    def render(self, events: list[dict[str, Any]]) -> bytes:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        if self.file.length == 0:
            writer.writerow(self.names)
        cells = self.cells
        writer.writerows([_safe(cell(e)) for cell in cells] for e in events)
        data = buf.getvalue().encode("utf-8")
        return _BOM + data if self.bom and self.file.length == 0 else data


class CsvOutput:
    needs_metadata = False  # the dataset is read from each event

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.display_name()
        self.main_dataset = load_yaml(W3C_MAP)["dataset"]
        if settings.columns == "w3c":
            self._main_columns = w3c_columns()
        else:
            self._main_columns = [(f, _ecs_cell(f)) for f in settings.columns]
        self._other_columns = [(f, _ecs_cell(f)) for f in settings.other_columns]
        self._sheets: dict[str, _Sheet] = {}  # by path
        self._committed: dict[str, Any] | None = None

    # --- files ------------------------------------------------------------------------------

    def _path(self, dataset: str) -> str | None:
        if dataset == self.main_dataset:
            return self.settings.path
        if self.settings.other_datasets == "skip":
            return None
        return self.settings.other_path.replace("{dataset}", _UNSAFE.sub("_", dataset) or "_")

    def _sheet(self, path: str) -> _Sheet:
        sheet = self._sheets.get(path)
        if sheet is None:
            columns = self._main_columns if path == self.settings.path else self._other_columns
            s = self.settings
            file = AppendFile(Path(path), s.max_bytes, s.keep_files, s.file_mode)
            sheet = self._sheets[path] = _Sheet(file, columns, self.settings.bom)
            if self._committed is None:
                file.restore(None)  # first start: a file already there is appended to
            else:
                # not in the committed state: created after the last commit, so uncommitted
                file.restore(self._committed.get(path, {"file": "", "length": 0}))
        return sheet

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        first = state is None
        self._committed = None if first else dict(state.get("files", {}))  # type: ignore[union-attr]
        for path in [self.settings.path, *(self._committed or self._others_present())]:
            self._sheet(path)
        if first:
            self._committed = {}
            return self._state()
        return None

    def _others_present(self) -> list[str]:
        """Files of other datasets already there at the first start (to append to, not cut)."""
        if self.settings.other_datasets == "skip":
            return []
        pattern = glob.escape(self.settings.other_path).replace("{dataset}", "*")
        return [p for p in glob.glob(pattern) if p != self.settings.path and Path(p).is_file()]

    def _state(self) -> dict[str, Any]:
        return {"files": {path: sheet.file.state() for path, sheet in self._sheets.items()}}

    # --- delivery ---------------------------------------------------------------------------

    def send(self, batch: EventBatch) -> Ack:
        if not len(batch):
            return Ack()
        by_path: dict[str, list[dict[str, Any]]] = {}
        for doc in batch.docs:
            event = orjson.loads(doc)
            path = self._path(str(ecs_field(event, "event.dataset") or ""))
            if path is not None:
                by_path.setdefault(path, []).append(event)
        started: list[tuple[_Sheet, int]] = []
        try:
            for sheet in self._sheets.values():
                sheet.file.rotate_if_full()  # everything written so far is committed
            for path, events in by_path.items():
                sheet = self._sheet(path)
                started.append((sheet, sheet.file.length))
                sheet.file.write([sheet.render(events)])
            for sheet, _ in started:
                sheet.file.sync()
        except (OSError, ShipperError) as e:
            # undo the batch in every file, so that the batch sent again is written once
            for sheet, length in started:
                sheet.file.cut_back(length)
            if isinstance(e, ShipperError):
                raise
            raise OutputFailed(f"{self.name}: cannot write: {e.strerror or e}") from e
        return Ack(delivered=len(batch), state=self._state())

    def close(self) -> None:
        for sheet in self._sheets.values():
            sheet.file.close()


def build(settings: Settings, data_dir: Path) -> CsvOutput:
    return CsvOutput(settings)


def check(settings: Settings, data_dir: Path) -> str:
    where = [check_writable(settings.path)]
    if settings.other_datasets == "file":
        where.append(check_writable(settings.other_path.replace("{dataset}", "dataset")))
    return "; ".join(where)
