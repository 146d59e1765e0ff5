"""Elasticsearch / OpenSearch output: bulk ``create`` with ``_id`` = event id, so exactly once.

The parts, one concern each: ``config`` (settings), ``encode`` (batch -> ``_bulk`` bodies, no
I/O), ``transport`` (one request, client errors translated), ``retry`` (pure classifier of
replies), ``deadletter`` (refused documents, durably), ``output`` (the send loop), ``setup``
(templates, lifecycle policy, Kibana objects, status check for the CLI).

Only ``config`` is imported eagerly: ``shipper.config`` imports the settings model while it is
itself being imported, and the rest pulls in the client library, which ``shipper --help``
does not need.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipper.outputs.elasticsearch.config import ElasticsearchOutput

if TYPE_CHECKING:
    from shipper.outputs.elasticsearch.output import BulkOutput


def build(settings: ElasticsearchOutput, data_dir: Path) -> BulkOutput:
    """The ``BUILDERS`` entry for ``type: elasticsearch`` and ``type: opensearch``."""
    from shipper.outputs.elasticsearch.output import BulkOutput

    return BulkOutput(settings, Path(data_dir))


__all__ = ["ElasticsearchOutput", "build"]
