"""Transports against mocked HTTP (``responses``) and a local TLS server: headers, errors."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import requests
import responses

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.output import BulkOutput
from shipper.outputs.elasticsearch.transport import ElasticsearchTransport, OpenSearchTransport

from .fakes import make_batch
from .localserver import LocalServer

URL = "http://127.0.0.1:9200"
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "elasticsearch"


def settings(**kw: object) -> ElasticsearchOutput:
    base: dict[str, object] = {"hosts": [URL], "http_client": "requests"}
    return ElasticsearchOutput(**{**base, **kw})


OPENSEARCH_ROOT = {"version": {"number": "2.17.0", "distribution": "opensearch"}}


def info(version: str) -> dict:
    return {"version": {"number": version}, "tagline": "You Know, for Search"}


def created(request: requests.PreparedRequest) -> tuple[int, dict, str]:
    n = request.body.count(b"\n") // 2
    body = {"errors": False, "items": [{"create": {"status": 201}}] * n}
    return 200, {**PRODUCT, "Content-Type": "application/json"}, orjson.dumps(body).decode()


def compat_of(request: requests.PreparedRequest, header: str) -> str:
    m = re.search(r"compatible-with=(\d+)", request.headers.get(header, ""))
    return m.group(1) if m else ""


@responses.activate
@pytest.mark.parametrize(("server", "expected"), [("8.15.3", "8"), ("9.1.0", "9")])
def test_compatibility_headers_follow_the_server(server: str, expected: str) -> None:
    def only_supported(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        asked = compat_of(request, "Accept")
        if int(asked) > int(server[0]):  # what Elasticsearch 8 does with compatible-with=9
            body = (FIXTURES / "error_400_compat_header.json").read_text()
            return 400, {"Content-Type": "application/json"}, body
        return created(request)

    responses.get(URL + "/", json=info(server), headers=PRODUCT)
    responses.add_callback(responses.POST, URL + "/_bulk", callback=only_supported)
    import elasticsearch

    client_major = elasticsearch.__versionstr__.split(".")[0]
    t = ElasticsearchTransport(settings())
    out = BulkOutput(settings(), Path("unused"), transport=t)
    assert out.send(make_batch(3)).delivered == 3
    bulk = responses.calls[-1].request
    assert compat_of(bulk, "Accept") == min(expected, client_major)
    assert compat_of(bulk, "Content-Type") == min(expected, client_major)
    assert "x-ndjson" in bulk.headers["Content-Type"]
    assert "filter_path=errors" in bulk.url
    assert t.server_version == server


@responses.activate
def test_api_key_header_and_secret_not_in_repr() -> None:
    responses.get(URL + "/", json=info("9.0.0"), headers=PRODUCT)
    responses.add_callback(responses.POST, URL + "/_bulk", callback=created)
    s = settings(api_key="c2VjcmV0LWtleQ==")
    assert "c2VjcmV0" not in repr(s) and "c2VjcmV0" not in str(s.model_dump())
    t = ElasticsearchTransport(s)
    t.request("POST", "/_bulk", b'{"create":{}}\n{}\n')
    assert responses.calls[-1].request.headers["Authorization"] == "ApiKey c2VjcmV0LWtleQ=="


@responses.activate
def test_password_file_gives_basic_auth(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    responses.get(URL + "/", json=info("9.0.0"), headers=PRODUCT)
    t = ElasticsearchTransport(settings(username="shipper", password_file=tmp_path / "pw"))
    t.negotiate()
    assert responses.calls[0].request.headers["Authorization"] == "Basic c2hpcHBlcjpzM2NyZXQ="


@responses.activate
def test_401_stops_the_output_with_a_clear_message() -> None:
    body = (FIXTURES / "error_401.json").read_text()
    responses.get(URL + "/", body=body, status=401, content_type="application/json")
    out = BulkOutput(settings(api_key="revoked"), Path("unused"))
    with pytest.raises(OutputFailed, match="authentication failed"):
        out.send(make_batch(1))


@responses.activate
def test_401_on_bulk() -> None:
    responses.get(URL + "/", json=info("9.0.0"), headers=PRODUCT)
    body = (FIXTURES / "error_401.json").read_text()
    responses.post(URL + "/_bulk", body=body, status=401, content_type="application/json")
    out = BulkOutput(settings(), Path("unused"))
    with pytest.raises(OutputFailed, match="authentication failed.*security_exception"):
        out.send(make_batch(1))


@responses.activate
def test_opensearch_refused_by_the_elasticsearch_client() -> None:
    responses.get(URL + "/", json={"version": {"number": "2.17.0", "distribution": "opensearch"}})
    with pytest.raises(OutputFailed, match="type: opensearch"):
        ElasticsearchTransport(settings()).negotiate()


@responses.activate
def test_opensearch_transport_sends_plain_json() -> None:
    responses.get(URL + "/", json=OPENSEARCH_ROOT)
    responses.add_callback(responses.POST, URL + "/_bulk", callback=created)
    s = settings(type="opensearch", username="admin", password="pw")
    out = BulkOutput(s, Path("unused"))
    assert out.send(make_batch(2)).delivered == 2
    req = responses.calls[-1].request
    assert req.headers["Content-Type"] == "application/x-ndjson"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["Authorization"].startswith("Basic ")
    assert "x-elastic-client-meta" not in {k.lower() for k in req.headers}


@responses.activate
@pytest.mark.parametrize(
    "error",
    [requests.exceptions.ConnectionError("refused"), requests.exceptions.ReadTimeout("slow")],
)
def test_connection_errors_and_timeouts_are_retry_later(error: Exception) -> None:
    responses.post(URL + "/_bulk", body=error)
    with pytest.raises(RetryLater):
        OpenSearchTransport(settings(type="opensearch")).request("POST", "/_bulk", b"{}\n")


@responses.activate
def test_a_timeout_hands_the_batch_back_and_the_next_send_delivers_it(tmp_path: Path) -> None:
    responses.get(URL + "/", json=OPENSEARCH_ROOT)
    responses.post(URL + "/_bulk", body=requests.exceptions.ReadTimeout("slow"))
    responses.add_callback(responses.POST, URL + "/_bulk", callback=created)
    out = BulkOutput(settings(type="opensearch"), tmp_path)
    batch = make_batch(4)
    with pytest.raises(RetryLater, match="timed out"):
        out.send(batch)  # no sleep in the output: the pipeline's loop waits
    assert out.send(batch).delivered == 4


# --- TLS against a real local server ---------------------------------------------------------


def test_tls_unknown_ca_is_fatal(self_signed: tuple[str, str, str]) -> None:
    cert, key, _ = self_signed
    with LocalServer(tls=(cert, key)) as srv:
        s = ElasticsearchOutput(type="opensearch", hosts=[srv.url], request_timeout=5)
        with pytest.raises(OutputFailed, match="TLS"):
            OpenSearchTransport(s).request("GET", "/")


def test_tls_with_ca_file(self_signed: tuple[str, str, str]) -> None:
    cert, key, _ = self_signed
    with LocalServer(tls=(cert, key)) as srv:
        s = ElasticsearchOutput(hosts=[srv.url], ca_file=cert, request_timeout=5)
        t = ElasticsearchTransport(s)
        t.negotiate()
        assert t.server_version == "9.1.0"


def test_tls_with_fingerprint(self_signed: tuple[str, str, str]) -> None:
    cert, key, fingerprint = self_signed
    with LocalServer(tls=(cert, key)) as srv:
        ok = ElasticsearchOutput(
            type="opensearch", hosts=[srv.url], ssl_assert_fingerprint=fingerprint
        )
        assert OpenSearchTransport(ok).request("GET", "/").status == 200
        wrong = ok.model_copy(update={"ssl_assert_fingerprint": "0" * 64})
        with pytest.raises(OutputFailed, match="TLS"):
            OpenSearchTransport(wrong).request("GET", "/")


def test_https_to_a_plain_http_port_is_a_tls_failure() -> None:
    with LocalServer() as srv:
        s = ElasticsearchOutput(type="opensearch", hosts=[srv.url.replace("http:", "https:")])
        with pytest.raises(OutputFailed, match="TLS"):
            OpenSearchTransport(s).request("GET", "/")
