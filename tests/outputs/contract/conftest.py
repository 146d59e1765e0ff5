"""The ``target`` fixture: one per output registered by shipper, built by its factory."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper import registry

from .builtin import _es_conftest
from .factories import FACTORIES
from .harness import Target

# the osmem-server fixtures of the Elasticsearch tests, for the opensearch factory
_es = _es_conftest()
engine = _es.engine
engine_url = _es.engine_url

#: "tests" (or whatever the test root package is called under this import mode)
_ROOT = __name__.split(".outputs.")[0] if ".outputs." in __name__ else ""


def _builtin_outputs() -> list[str]:
    return [
        n for n, e in registry.entries("outputs").items() if e.distribution == registry.DISTRIBUTION
    ]


def _factory(spec: str) -> Any:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(f"{_ROOT}.{module}" if _ROOT else module), function)


@pytest.fixture(params=_builtin_outputs())
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    name = request.param
    spec = FACTORIES.get(name)
    if spec is None:  # a registered output that never ran the contract is a failure
        pytest.fail(
            f"output {name!r} is registered but has no contract factory in"
            " tests/outputs/contract/factories.py"
        )
    yield from _factory(spec)(request, tmp_path)
