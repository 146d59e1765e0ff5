"""Send one request, get ``Reply(status, body)``; client exceptions become shipper errors here.

Two implementations of the same one-method contract:

- ``ElasticsearchTransport`` uses the official ``elasticsearch`` client (auth, Elastic Cloud id,
  product check). The client sends REST compatibility headers of its own major version
  (``compatible-with=9`` for elasticsearch-py 9), which an Elasticsearch 8 server refuses; so
  the first request asks for the server's version with ``compatible-with=8`` (understood by 8
  and 9) and later requests use ``min(server major, client major)``.
- ``OpenSearchTransport`` talks to OpenSearch through ``elastic_transport`` (the HTTP layer the
  Elasticsearch client itself is built on) with plain ``application/json``. The Elasticsearch
  client cannot be used: it refuses any server that does not answer with
  ``X-Elastic-Product: Elasticsearch``, and OpenSearch answers 406 to the compatibility media
  types. ``opensearch-py`` would work, but brings a second HTTP stack with other TLS options
  and another exception hierarchy to translate; through ``elastic_transport`` both flavours
  share node classes, TLS settings and the one exception table below, and need no new
  dependency.

Each transport learns what it talks to from the root endpoint (``GET /``) before its first
other request, and ``engine_mismatch`` (the one place that reads that answer for it) stops a
``type: elasticsearch`` pointed at OpenSearch, or the reverse, with a message that says which
engine it is and which ``type`` to use: at ``shipper check --outputs``, ``setup`` and run start.

Retries are not done here (``max_retries=0``): the output retries only the documents that
failed, which a transport-level retry of the whole body cannot do.

Transport errors: connection refused/reset and timeouts raise ``RetryLater``; TLS failures,
a non-Elasticsearch server and unparseable configuration raise ``OutputFailed``. HTTP error
statuses are *not* exceptions: they come back as a ``Reply`` for ``retry.classify``.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import elastic_transport
import orjson
from elastic_transport import (
    ConnectionError as TransportConnectionError,
)
from elastic_transport import (
    ConnectionTimeout,
    NodeConfig,
    SerializationError,
    TlsError,
)
from elastic_transport.client_utils import url_to_node_config

from shipper.errors import ConfigError, OutputFailed, RetryLater
from shipper.outputs.elasticsearch.config import ElasticsearchOutput

JSON = "application/json"
NDJSON = "application/x-ndjson"

#: the client library's loggers, and the least level they may log at: it logs every request
#: at INFO, and marks its node dead at WARNING where the delivery loop already says that the
#: output is unavailable. Set here, where the library is imported, so that the shipper's core
#: (``shipper.logs``, ``shipper.service``) names no output's library; ``logging`` keeps a
#: logger's level whatever the root's (``-v`` included), so the order of setup does not matter.
CLIENT_LOG_LEVELS = {
    "elastic_transport": logging.WARNING,
    "elasticsearch": logging.WARNING,
    "urllib3": logging.WARNING,
    "elastic_transport.node_pool": logging.ERROR,
}
for _name, _level in CLIENT_LOG_LEVELS.items():
    logging.getLogger(_name).setLevel(_level)


@dataclass(slots=True)
class Reply:
    status: int
    body: Any


class Transport(Protocol):
    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply: ...

    def close(self) -> None: ...


_ALL_OK = re.compile(rb'^\{(?:"took":\d+,)?"errors":false[,}]')


class _BulkAwareJson(elastic_transport.JsonSerializer):
    """orjson, and a shortcut for the common bulk reply: ``"errors":false`` needs no items.

    Parsing 5,000 ``{"create":{"status":201}}`` items costs about 7 ms, more than encoding the
    whole request; when the reply starts by saying nothing failed, the items are not read.
    Only a bulk reply has ``errors`` first (after ``took``), so other replies parse as usual.
    """

    def loads(self, data: bytes) -> Any:
        if _ALL_OK.match(data[:48]):
            return {"errors": False}
        return orjson.loads(data) if data else None


def _serializers(compat: bool) -> dict[str, Any]:
    fast = _BulkAwareJson()
    out: dict[str, Any] = {JSON: fast, NDJSON: elastic_transport.NdjsonSerializer()}
    if compat:
        out["application/vnd.elasticsearch+json"] = fast
        out["application/vnd.elasticsearch+x-ndjson"] = elastic_transport.NdjsonSerializer()
    return out


_PRODUCTS = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


def identify(root: Any) -> tuple[str, str]:
    """``(product, version)`` from the root endpoint's answer; product ``""`` when unclear.

    OpenSearch says ``version.distribution: opensearch`` (and an OpenSearch tagline, even in
    its 7.10.2 compatibility mode); Elasticsearch has no distribution, a ``build_flavor`` and
    the tagline "You Know, for Search".
    """
    if not isinstance(root, dict):
        return "", ""
    version = root.get("version")
    version = version if isinstance(version, dict) else {}
    number = str(version.get("number", ""))
    tagline = str(root.get("tagline", ""))
    if version.get("distribution") == "opensearch" or "opensearch" in tagline.lower():
        return "opensearch", number
    if tagline == "You Know, for Search" or "build_flavor" in version:
        return "elasticsearch", number
    return "", number


def engine_mismatch(configured: str, root: Any, where: str) -> str | None:
    """The message for an output whose ``type`` is not the engine that answered, else None."""
    product, number = identify(root)
    if not product or product == configured:
        return None
    return (
        f"{where}: this is {_PRODUCTS[product]} {number}, not {_PRODUCTS[configured]}; "
        f"use type: {product}"
    )


def _describe(e: Exception) -> str:
    inner = getattr(e, "errors", ()) or ()
    if inner:
        text = str(inner[0])
    else:
        # elastic_transport's ConnectionError prints only "Connection error"; the reason
        # ("[Errno 111] Connection refused", a TLS or DNS failure) is in its message.
        message = getattr(e, "message", None)
        text = str(message) if isinstance(message, (str, Exception)) and message else str(e)
    return text or type(e).__name__


@contextmanager
def _translated(where: str) -> Iterator[None]:
    """The one table from client exceptions to what the pipeline does about them."""
    try:
        yield
    except TlsError as e:
        raise OutputFailed(f"{where}: TLS failed: {_describe(e)}") from None
    except ConnectionTimeout as e:
        raise RetryLater(f"{where}: timed out: {_describe(e)}") from None
    except TransportConnectionError as e:
        raise RetryLater(f"{where}: cannot connect: {_describe(e)}") from None
    except SerializationError as e:
        raise RetryLater(f"{where}: unreadable reply: {_describe(e)}") from None


def _auth_header(settings: ElasticsearchOutput) -> str | None:
    key = settings.resolved_api_key()
    if key:
        return f"ApiKey {key}"
    password = settings.resolved_password()
    if settings.username and password is not None:
        raw = f"{settings.username}:{password}".encode()
        return f"Basic {base64.b64encode(raw).decode()}"
    return None


def _tls_kwargs(settings: ElasticsearchOutput) -> dict[str, Any]:
    out: dict[str, Any] = {"verify_certs": settings.verify_certs}
    if settings.ca_file is not None:
        out["ca_certs"] = str(settings.ca_file)
    if settings.ssl_assert_fingerprint:
        out["ssl_assert_fingerprint"] = settings.ssl_assert_fingerprint
    if not settings.verify_certs:
        out["ssl_show_warn"] = False
    return out


class ElasticsearchTransport:
    """Requests through the official client, with negotiated compatibility headers."""

    def __init__(self, settings: ElasticsearchOutput) -> None:
        from elasticsearch import Elasticsearch, __versionstr__

        self.where = settings.display_name()
        self.client_major = int(__versionstr__.split(".")[0])
        self.compat: int | None = None
        self.server_version = ""
        kwargs: dict[str, Any] = {
            "request_timeout": settings.request_timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
            "node_class": settings.http_client,
            "connections_per_node": settings.max_in_flight + 1,
            "serializers": _serializers(compat=True),
            **_tls_kwargs(settings),
        }
        if settings.cloud_id:
            kwargs["cloud_id"] = settings.cloud_id
        else:
            kwargs["hosts"] = settings.hosts
        key = settings.resolved_api_key()
        password = settings.resolved_password()
        if key:
            kwargs["api_key"] = key
        elif settings.username and password is not None:
            kwargs["basic_auth"] = (settings.username, password)
        try:
            self._client = Elasticsearch(**kwargs)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"outputs ({self.where}): {e}") from None

    def _headers(self, version: int, body: Any) -> dict[str, str]:
        mime = f"; compatible-with={version}"
        kind = "x-ndjson" if isinstance(body, bytes | bytearray) else "json"
        headers = {"accept": f"application/vnd.elasticsearch+json{mime}"}
        if body is not None:
            headers["content-type"] = f"application/vnd.elasticsearch+{kind}{mime}"
        return headers

    def _call(self, method: str, path: str, body: Any, params: Any, version: int) -> Reply:
        from elasticsearch import ApiError, UnsupportedProductError

        try:
            with _translated(self.where):
                resp = self._client.perform_request(
                    method, path, params=params, headers=self._headers(version, body), body=body
                )
        except UnsupportedProductError as e:
            named = engine_mismatch("elasticsearch", e.body, self.where)
            raise OutputFailed(
                named or f"{self.where}: the server is not Elasticsearch (no X-Elastic-Product)"
            ) from None
        except ApiError as e:
            return Reply(e.meta.status, e.body)
        return Reply(resp.meta.status, resp.body)

    def negotiate(self) -> None:
        """Learn the server's major version once, so compatibility headers suit it."""
        reply = self._call("GET", "/", None, None, min(8, self.client_major))
        if reply.status in (401, 403):
            what = "authentication failed" if reply.status == 401 else "not allowed"
            raise OutputFailed(f"{self.where}: {what} (HTTP {reply.status})")
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise RetryLater(f"{self.where}: GET / answered HTTP {reply.status}")
        named = engine_mismatch("elasticsearch", reply.body, self.where)
        if named:  # one that sends X-Elastic-Product to please clients, yet says what it is
            raise OutputFailed(named)
        self.server_version = str(reply.body.get("version", {}).get("number", ""))
        try:
            major = int(self.server_version.split(".")[0])
        except ValueError:
            major = self.client_major
        if major < 8:
            raise OutputFailed(f"{self.where}: Elasticsearch {self.server_version} is too old (8+)")
        self.compat = min(major, self.client_major)

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply:
        if self.compat is None:
            self.negotiate()
        assert self.compat is not None
        return self._call(method, path, body, params, self.compat)

    def close(self) -> None:
        self._client.close()


class OpenSearchTransport:
    """Plain-JSON requests through ``elastic_transport``; no compat types.

    The product check is ours: before the first request other than ``GET /`` itself (whose
    caller reads the answer), ``identify`` asks ``GET /`` once and refuses an Elasticsearch.
    A root endpoint the credentials may not read (a writer-only role) is no reason to stop.
    """

    def __init__(self, settings: ElasticsearchOutput) -> None:
        self.where = settings.display_name()
        self.identified = False
        self.server_version = ""
        headers: dict[str, str] = {}
        auth = _auth_header(settings)
        if auth:
            headers["authorization"] = auth
        nodes: list[NodeConfig] = []
        try:
            for url in settings.hosts:
                node = url_to_node_config(url, use_default_ports_for_scheme=True)
                nodes.append(
                    dataclasses.replace(
                        node,
                        headers={**node.headers, **headers},
                        request_timeout=settings.request_timeout,
                        connections_per_node=settings.max_in_flight + 1,
                        **_tls_kwargs(settings),
                    )
                )
            self._transport = elastic_transport.Transport(
                nodes,
                node_class=settings.http_client,
                serializers=_serializers(compat=False),
                max_retries=0,
                meta_header=False,
            )
        except (ValueError, TypeError) as e:
            raise ConfigError(f"outputs ({self.where}): {e}") from None

    def identify(self) -> None:
        reply = self._send("GET", "/")
        self.identified = True
        if reply.status == 200:
            self.server_version = identify(reply.body)[1]
            named = engine_mismatch("opensearch", reply.body, self.where)
            if named:
                raise OutputFailed(named)

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply:
        if not self.identified and not (method == "GET" and path == "/"):
            self.identify()
        return self._send(method, path, body, params)

    def _send(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply:
        target = path
        if params:
            from urllib.parse import urlencode

            target = f"{path}?{urlencode(params, safe=',*')}"
        headers = {"accept": JSON}
        if body is not None:
            headers["content-type"] = NDJSON if isinstance(body, bytes | bytearray) else JSON
        with _translated(self.where):
            meta, resp = self._transport.perform_request(method, target, headers=headers, body=body)
        return Reply(meta.status, resp)

    def close(self) -> None:
        self._transport.close()


def make_transport(settings: ElasticsearchOutput) -> Transport:
    factory: Callable[[ElasticsearchOutput], Transport] = (
        OpenSearchTransport if settings.type == "opensearch" else ElasticsearchTransport
    )
    return factory(settings)
