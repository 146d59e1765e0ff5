"""Prometheus metrics, opt-in (``metrics: {listen: "127.0.0.1:9108"}``).

The pipeline tells ``Metrics`` what happened at a few points, each once per chunk or per batch,
never per event: a chunk decoded (``took``: records read, events kept, duplicates, quarantined,
by input), a batch handed to delivery (``sealed``) and committed (``committed``: only then are
its events counted as shipped), an output's ``send`` (``sent`` / ``retry`` / ``failed``, with
its latency). Those are plain integers in dictionaries; the Prometheus objects are built only
when something scrapes (``_Collector``), and ``prometheus_client`` is imported only when the
endpoint is on. Backlog and lag are read from the pipeline at scrape time.

The endpoint listens on the loopback unless told otherwise: what it says (file names aside,
how much is shipped from where and how far behind) is nobody else's business.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipper.errors import ConfigError

log = logging.getLogger("shipper")

__all__ = ["IDLE", "LATENCY_BUCKETS", "Metrics"]

#: seconds; an fsync takes milliseconds, a bulk request to a busy cluster seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_INPUT_COUNTS = ("read", "shipped", "duplicates", "quarantined")
_INPUT_NAMES = {
    "read": "records_read",
    "shipped": "events_shipped",
    "duplicates": "duplicates",
    "quarantined": "records_quarantined",
}


@dataclass(slots=True)
class _Output:
    shipped: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    failed: int = 0
    last_success: float = math.nan
    last_failure: float = math.nan
    # the send latency histogram: counts per bucket (not cumulative), the +Inf one last
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    seconds: float = 0.0


class Metrics:
    """What a run has done, for the Prometheus endpoint; cheap enough to keep always."""

    def __init__(self, inputs: Sequence[Any] = ()) -> None:
        # an input's settings object -> its label ("inputs[0]") and type
        self._labels = {id(inp): (f"inputs[{i}]", str(inp.type)) for i, inp in enumerate(inputs)}
        self._inputs: dict[tuple[str, str], list[int]] = {
            label: [0] * len(_INPUT_COUNTS) for label in self._labels.values()
        }
        self._outputs: dict[str, _Output] = {}
        self._building: dict[tuple[str, str], list[int]] = {}
        self._sealed: dict[int, dict[tuple[str, str], list[int]]] = {}
        # input bytes behind the batch being built, those of each sealed batch, and those of
        # every batch committed: the backlog is what a scan found minus what got committed
        self._building_bytes = 0
        self._sealed_bytes: dict[int, int] = {}
        self.committed_bytes = 0
        self._lock = threading.Lock()
        self._server: Any = None
        self.backlog: Callable[[], float] = lambda: math.nan
        self.newest_event: Callable[[], str] = lambda: ""
        #: told of every failed send (the checkpoint keeps the time for ``shipper status``)
        self.on_failure: Callable[[str], None] = lambda output: None

    # --- the pipeline's calls ---------------------------------------------------------

    def took(
        self,
        inp: Any,
        records: int,
        events: int,
        duplicates: int,
        quarantined: int,
        nbytes: int = 0,
    ) -> None:
        """A decoded chunk of ``inp``'s, ``nbytes`` of its file: ``records`` decoded, ``events``
        of them added to the batch being built (shipped once it is committed), ``duplicates``
        skipped, and ``quarantined`` records besides (read too)."""
        label = self._labels.get(id(inp)) or ("inputs[?]", str(getattr(inp, "type", "?")))
        with self._lock:
            self._building_bytes += nbytes
            counts = self._inputs.setdefault(label, [0] * len(_INPUT_COUNTS))
            counts[0] += records + quarantined
            pending = self._building.setdefault(label, [0, 0, 0])
            pending[0] += events
            pending[1] += duplicates
            pending[2] += quarantined

    def sealed(self, batch: object) -> None:
        """The batch being built goes to delivery: what ``took`` counted for it travels with
        it until it is committed."""
        with self._lock:
            if self._building:
                self._sealed[id(batch)] = self._building
                self._building = {}
            if self._building_bytes:
                self._sealed_bytes[id(batch)] = self._building_bytes
                self._building_bytes = 0

    def committed(self, batch: object) -> None:
        with self._lock:
            self.committed_bytes += self._sealed_bytes.pop(id(batch), 0)
            for label, (events, duplicates, quarantined) in self._sealed.pop(id(batch), {}).items():
                counts = self._inputs.setdefault(label, [0] * len(_INPUT_COUNTS))
                counts[1] += events
                counts[2] += duplicates
                counts[3] += quarantined

    def dropped(self, batch: object) -> None:
        """The batch was not committed (stopped, failed): it is read again, counted then."""
        with self._lock:
            self._sealed.pop(id(batch), None)
            self._sealed_bytes.pop(id(batch), None)

    def sent(self, output: str, seconds: float, delivered: int, duplicates: int, dead: int) -> None:
        o = self._output(output)
        o.shipped += delivered
        o.duplicates += duplicates
        o.dead_lettered += dead
        o.last_success = time.time()
        self._observe(o, seconds)

    def retry(self, output: str, seconds: float) -> None:
        """The output asked to retry later (unavailable, overloaded, disk full)."""
        o = self._output(output)
        o.retried += 1
        o.last_failure = time.time()
        self._observe(o, seconds)
        self._failed(output)

    def failed(self, output: str, seconds: float) -> None:
        """The output cannot work (``OutputFailed``)."""
        o = self._output(output)
        o.failed += 1
        o.last_failure = time.time()
        self._observe(o, seconds)
        self._failed(output)

    def _failed(self, output: str) -> None:
        try:
            self.on_failure(output)
        except Exception as e:  # noting it must not stop the retrying; a commit says more
            log.debug("%s: the failure could not be noted in the checkpoint: %s", output, e)

    def _output(self, name: str) -> _Output:
        o = self._outputs.get(name)
        if o is None:
            o = self._outputs.setdefault(name, _Output())
        return o

    @staticmethod
    def _observe(o: _Output, seconds: float) -> None:
        o.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        o.seconds += seconds

    # --- the endpoint -----------------------------------------------------------------

    def serve(self, host: str, port: int) -> None:
        """Start the endpoint (a daemon thread); ``ConfigError`` naming the address when it
        cannot listen."""
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.process_collector import ProcessCollector

        registry = CollectorRegistry(auto_describe=True)
        registry.register(_Collector(self))
        ProcessCollector(registry=registry)
        try:
            self._server, _ = start_http_server(port, host, registry=registry)
        except OSError as e:
            raise ConfigError(
                f"metrics.listen {host}:{port}: cannot listen: {e.strerror or e}"
            ) from None

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the endpoint listens (the port the system chose for port 0), if it does."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- what a scrape reads ----------------------------------------------------------

    def snapshot(self) -> tuple[dict[tuple[str, str], list[int]], dict[str, _Output]]:
        with self._lock:
            inputs = {k: list(v) for k, v in self._inputs.items()}
        from shipper.redact import mask  # an output's name may be a URL with its password

        outputs = {
            mask(k): dataclasses.replace(v, buckets=list(v.buckets))
            for k, v in list(self._outputs.items())
        }
        return inputs, outputs


#: for code that runs without a pipeline's metrics (tests building a ``Delivery``)
IDLE = Metrics()


class _Collector:
    """Builds the metric families from a ``Metrics`` at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterator[Any]:
        return iter(())  # unchecked: the families' names are fixed here

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from shipper.pipeline.progress import lag_seconds

        inputs, outputs = self._m.snapshot()
        helps = {
            "read": "records read from the input's files",
            "shipped": "events of the input committed as delivered by every output",
            "duplicates": "events skipped: their id was shipped already",
            "quarantined": "records quarantined (unreadable, invalid)",
        }
        for i, what in enumerate(_INPUT_COUNTS):
            family = CounterMetricFamily(
                f"shipper_input_{_INPUT_NAMES[what]}",
                helps[what],
                labels=("input", "type"),
            )
            for (label, kind), counts in sorted(inputs.items()):
                family.add_metric((label, kind), counts[i])
            yield family

        def per_output(name: str, doc: str, value: Callable[[_Output], float]) -> Any:
            family = CounterMetricFamily(name, doc, labels=("output",))
            for out, o in sorted(outputs.items()):
                family.add_metric((out,), value(o))
            return family

        yield per_output("shipper_output_events_shipped", "events delivered", lambda o: o.shipped)
        yield per_output(
            "shipper_output_duplicates", "events the output already had", lambda o: o.duplicates
        )
        yield per_output(
            "shipper_output_dead_lettered", "events dead-lettered", lambda o: o.dead_lettered
        )
        yield per_output(
            "shipper_output_retries", "sends answered 'retry later'", lambda o: o.retried
        )
        yield per_output("shipper_output_failures", "sends that failed", lambda o: o.failed)
        latency = HistogramMetricFamily(
            "shipper_output_send_seconds", "time to deliver a batch", labels=("output",)
        )
        for out, o in sorted(outputs.items()):
            running, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, math.inf), o.buckets, strict=True):
                running += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
            latency.add_metric((out,), buckets, o.seconds)
        yield latency
        for name, doc, attr in (
            ("last_success", "last delivered batch", "last_success"),
            ("last_failure", "last send that failed or asked to retry", "last_failure"),
        ):
            family = GaugeMetricFamily(
                f"shipper_output_{name}_timestamp_seconds",
                f"Unix time of the {doc}",
                labels=("output",),
            )
            for out, o in sorted(outputs.items()):
                family.add_metric((out,), getattr(o, attr))
            yield family
        yield GaugeMetricFamily(
            "shipper_backlog_bytes",
            "bytes of the inputs' files not committed yet: found by the last scan and not yet"
            " delivered to every output",
            value=float(self._m.backlog()),
        )
        lag = lag_seconds(self._m.newest_event())
        yield GaugeMetricFamily(
            "shipper_lag_seconds",
            "now minus the @timestamp of the newest event shipped (NaN before the first)",
            value=math.nan if lag is None else lag,
        )
