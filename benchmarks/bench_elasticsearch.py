"""Events/s and peak RSS of the Elasticsearch/OpenSearch output, from ready EventBatches.

Two targets:
- ``local``: a loopback HTTP server in a separate process answering ``_bulk`` with "all
  created" at once, so the figure is the shipper's own cost (encode, HTTP, reply parsing);
- ``osmem``: a real OpenSearch-compatible engine (``pip install osmem-server``).

    python benchmarks/bench_elasticsearch.py --events 1000000 --target local
    python benchmarks/bench_elasticsearch.py --events 200000 --target osmem
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper.outputs.base import EventBatch  # noqa: E402
from shipper.outputs.elasticsearch.config import ElasticsearchOutput  # noqa: E402
from shipper.outputs.elasticsearch.output import BulkOutput  # noqa: E402

CREATED = b'{"create":{"status":201}}'


def _serve(port_out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = body.count(b"\n") // 2
            data = b'{"errors":false,"items":[' + b",".join([CREATED] * n) + b"]}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def make_batches(total: int, size: int) -> list[EventBatch]:
    users = [f"user{i}@contoso.com" for i in range(500)]
    batches = []
    for start in range(0, total, size):
        b = EventBatch()
        for i in range(start, min(total, start + size)):
            ts = f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z"
            doc = {
                "@timestamp": ts,
                "event": {
                    "kind": "event",
                    "module": "azure_rms",
                    "dataset": "azure_rms.usage",
                    "action": "AcquireLicense",
                    "id": f"{i:08x}-2014-442b-a1ed-1a5e14c58316",
                    "outcome": "success",
                    "category": ["file"],
                    "type": ["access"],
                },
                "user": {"id": users[i % 500], "email": users[i % 500], "name": f"user{i % 500}"},
                "source": {"ip": f"10.{i % 250}.{i % 200}.{i % 100}"},
                "user_agent": {"name": "WINWORD.EXE", "version": "16.0.17328.20162"},
                "file": {"name": "Salary Review_v2.docx", "extension": "docx"},
                "ecs": {"version": "9.4.0"},
                "azure_rms": {"content_id": "6e5dfd1e-54d7-4c7b-b3a4-5cd4f34805e0"},
            }
            b.ids.append(doc["event"]["id"])
            b.datasets.append("azure_rms.usage")
            b.docs.append(orjson.dumps(doc))
            b.timestamps.append(ts)
        batches.append(b)
    return batches


def run(url: str, batches: list[EventBatch], **kw: object) -> tuple[float, int]:
    settings = ElasticsearchOutput(type="opensearch", hosts=[url], **kw)
    with tempfile.TemporaryDirectory() as d:
        out = BulkOutput(settings, Path(d))
        started = time.perf_counter()
        delivered = 0
        for b in batches:
            ack = out.send(b)
            delivered += ack.delivered + ack.duplicates
        seconds = time.perf_counter() - started
        out.close()
    return seconds, delivered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000, help="events per send (pipeline batch)")
    ap.add_argument("--target", choices=["local", "osmem"], default="local")
    ap.add_argument("--in-flight", type=int, default=2)
    ap.add_argument("--bulk-docs", type=int, default=5000)
    args = ap.parse_args()

    batches = make_batches(args.events, args.batch)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    server = None
    if args.target == "local":
        q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        proc = multiprocessing.Process(target=_serve, args=(q,), daemon=True)
        proc.start()
        url = f"http://127.0.0.1:{q.get(timeout=10)}"
    else:
        from osmem_server import OsmemServer

        server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
        url = server.url
    try:
        seconds, delivered = run(
            url, batches, max_in_flight=args.in_flight, bulk_max_docs=args.bulk_docs
        )
    finally:
        if server is not None:
            server.close()
        elif args.target == "local":
            proc.terminate()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"target={args.target} events={delivered} seconds={seconds:.2f} "
        f"events/s={delivered / seconds:,.0f} peak_rss={peak / 1024:.0f}MiB "
        f"(of which input batches ~{rss_before / 1024:.0f}MiB)"
    )


if __name__ == "__main__":
    main()
