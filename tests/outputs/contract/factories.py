"""Which factory runs the contract suite for which registered output: one line each.

An output's engineer adds ``"<output name>": "<module under tests/>:<function>"`` (e.g.
``"syslog": "outputs.syslog.contract:factory"``) here; the
function is a generator ``(request, tmp_path) -> Iterator[harness.Target]`` that starts a real
receiver (see ``builtin.py`` for examples, ``harness.Gate`` for a receiver that can be made
temporarily unavailable). Every output registered under ``shipper.outputs`` by the ``shipper``
distribution runs the suite; one without a factory fails it, naming the output.
"""

FACTORIES = {
    "ndjson": "outputs.contract.builtin:ndjson",
    "csv": "outputs.contract.builtin:csv_output",
    "stdout": "outputs.contract.builtin:stdout",
    "opensearch": "outputs.contract.builtin:opensearch",
    "elasticsearch": "outputs.contract.builtin:elasticsearch",
    "syslog": "outputs.syslog.contract:factory",
    "fluentd": "outputs.fluentd.contract:factory",
}
