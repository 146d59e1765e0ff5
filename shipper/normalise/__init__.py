"""Normalisers: records in, ECS events out, chosen by the input and found by name.

A format only reads records; which normaliser turns them into events is the input's choice
(``SourceSettings.normaliser``), carried to the decoder with each chunk's options and looked up
here in the registry (entry point group ``shipper.normalisers``), so a plugin can bring its own
normaliser for an existing format, or its own format for an existing normaliser.

A normaliser module provides ``make(options) -> normaliser``, called once per process and set of
options (``options`` is the chunk's plain-data options: ``keep_original``, the input's
``tags`` and ``labels``, and whatever its input adds, such as ``enrich``). What it returns
takes the record shape of the formats it serves:

* record dicts (the Windows formats): ``normaliser(record, path) -> event dict``;
* columns under a header (W3C): ``normaliser.bind_json(fields)`` once per ``#Fields`` line,
  returning ``fn(values, path, offset, line) -> (event.id, @timestamp, JSON bytes)``, and
  optionally a fourth item, the event's header fields (``Decoded.header_fields``), which spare
  outputs that write message headers a parse of the document, and a fifth, the event as
  msgpack (``Decoded.msgpack``) when the options ask for ``msgpack``.

Imports neither pydantic nor the configuration: decoder processes call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from shipper import registry

#: a normaliser of record dicts: ``(record, path) -> event``
RecordNormaliser = Callable[[dict[str, Any], str], dict[str, Any]]


def for_chunk(options: dict[str, object], default: str) -> Any:
    """The normaliser the chunk's input chose (``options["normaliser"]``), made with its
    options; ``default`` when the chunk carries no choice (a format used on its own, as tools
    and tests do)."""
    name = str(options.get("normaliser") or default)
    return _made(name, json.dumps(options, sort_keys=True, default=str))


@cache
def _made(name: str, options: str) -> Any:
    return registry.load("normalisers", name).make(json.loads(options))


def tags_and_labels(options: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The input's ``tags`` and ``labels`` (its ``fields`` setting), for every normaliser to
    add to its events."""
    return list(options.get("tags") or ()), dict(options.get("labels") or {})


def add_tags_and_labels(event: dict[str, Any], tags: list[str], labels: dict[str, str]) -> None:
    """Merge the input's tags and labels into an event; what the event says itself wins."""
    if tags:
        have = event.get("tags") or []
        event["tags"] = [*have, *(t for t in tags if t not in have)]
    if labels:
        event["labels"] = {**labels, **(event.get("labels") or {})}


def labelled(normalise: RecordNormaliser, options: dict[str, Any]) -> RecordNormaliser:
    """``normalise`` with the input's tags and labels added to every event; ``normalise``
    itself when the input has none (the common case costs nothing)."""
    tags, labels = tags_and_labels(options)
    if not tags and not labels:
        return normalise

    def with_labels(rec: dict[str, Any], path: str) -> dict[str, Any]:
        event = normalise(rec, path)
        add_tags_and_labels(event, tags, labels)
        return event

    return with_labels
