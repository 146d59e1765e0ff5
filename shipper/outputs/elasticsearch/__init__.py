"""Elasticsearch / OpenSearch output: bulk ``create`` with ``_id`` = event id, so exactly once.

The parts, one concern each: ``config`` (settings), ``encode`` (batch -> ``_bulk`` bodies, no
I/O), ``transport`` (one request, client errors translated), ``retry`` (pure classifier of
replies), ``output`` (the send loop, dead-lettering refused documents through
``shipper.rejects``), ``setup`` (templates, lifecycle policy, Kibana objects, status check for
the CLI).

The entry points name ``config`` (settings, ``build``, ``check``, ``setup``); only it is imported
eagerly here, the rest pulls in the client library, which validating a configuration does not
need.
"""

from __future__ import annotations

from shipper.outputs.elasticsearch.config import ElasticsearchOutput, build

__all__ = ["ElasticsearchOutput", "build"]
