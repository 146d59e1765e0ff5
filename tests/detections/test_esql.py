"""The ES|QL rules parse with Elasticsearch's own grammar and read only fields that exist.

``esql-parser`` is the ANTLR lexer and parser generated from Elasticsearch's ES|QL grammar;
a syntax error in a shipped rule fails here naming the rule and the position, instead of on
the user's Kibana when ``shipper setup`` loads it. Every column the query reads must be a field
of the index templates (``mappings/elasticsearch``) or one the query's own EVAL or STATS made.
What the rules mean on data is checked in ``test_planted.py``, which runs them with the same
parse tree (``esql.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from shipper.detections import elastic_rules

pytest.importorskip("esql_parser", reason="pip install esql-parser")

from . import esql  # noqa: E402

ESQL = {r["rule_id"]: r for r in elastic_rules() if r["type"] == "esql"}


def _template_fields() -> set[str]:
    from tests.outputs.elasticsearch.test_setup import explicit_fields

    return set(explicit_fields())


def test_the_shipped_rules_include_esql_ones() -> None:
    assert len(ESQL) >= 2  # the after-hours baseline and the missing-1004 rule


def test_no_rule_is_eql_without_a_parser_for_it() -> None:
    """EQL rules would need the same treatment (PyPI ``eql``); there are none today."""
    assert not [r["name"] for r in elastic_rules() if r.get("language") == "eql"]


@pytest.mark.parametrize("rule_id", sorted(ESQL), ids=lambda i: ESQL[i]["name"][:50])
def test_esql_rule_parses(rule_id: str) -> None:
    rule = ESQL[rule_id]
    _, errors = esql.parse(rule["query"])
    assert not errors, f"{rule['name']} ({rule_id}): {errors}"


@pytest.mark.parametrize("rule_id", sorted(ESQL), ids=lambda i: ESQL[i]["name"][:50])
def test_esql_rule_reads_only_template_fields(rule_id: str) -> None:
    rule = ESQL[rule_id]
    fields = _template_fields()
    unknown = esql.referenced_fields(rule["query"]) - fields
    assert not unknown, f"{rule['name']}: not in the index templates: {sorted(unknown)}"
    # the analyzer's view: each command sees only the columns the ones before it left
    esql.compile_query(rule["query"], fields)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda q: q.replace("\n| STATS", "\n STATS", 1), "line 3:"),
        (lambda q: q.replace("| WHERE", "| WHER", 1), "line 2:3: mismatched input 'WHER'"),
        (lambda q: q.replace("MAX(", "MAX(@timestamp", 1), "line 3:"),
        (lambda q: q.replace('"', "'", 1), "line 2:"),
    ],
    ids=["missing pipe", "misspelled command", "unbalanced call", "single quotes"],
)
def test_a_broken_query_is_reported_with_its_position(edit: Any, where: str) -> None:
    """The check can fail: each edit of a shipped query is a syntax error, found where it is."""
    absence = next(r for r in ESQL.values() if "last_refresh" in r["query"])
    broken = edit(absence["query"])
    assert broken != absence["query"]
    _, errors = esql.parse(broken)
    assert errors and errors[0].startswith(where), errors


def test_an_unknown_field_or_a_dropped_column_is_reported() -> None:
    fields = _template_fields()
    typo = 'FROM logs-x-*\n| WHERE user.idd == "a"'
    assert esql.referenced_fields(typo) - fields == {"user.idd"}
    with pytest.raises(esql.EsqlError, match=r"Unknown column \[user.idd\]"):
        esql.compile_query(typo, fields)
    # after STATS only its columns exist, as in Elasticsearch
    gone = 'FROM logs-x-*\n| STATS n = COUNT(*) BY host.name\n| WHERE user.id == "a"'
    with pytest.raises(esql.EsqlError, match=r"Unknown column \[user.id\]"):
        esql.compile_query(gone, fields)


def test_case_values_must_share_one_type() -> None:
    """Elasticsearch refuses CASE(c, <long>, <integer>); COUNT is a long, 0 an integer."""
    import datetime as dt

    now = dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc)
    rows = [{"user.id": "a"}]
    base = "FROM logs-x-*\n| STATS n = COUNT(*) BY user.id\n| EVAL x = CASE(n > 5, n, {})"
    bad = esql.compile_query(base.format("0"), {"user.id"})
    with pytest.raises(esql.EsqlError, match=r"must be \[long\], found value of type \[integer\]"):
        bad.run(rows, now)
    good = esql.compile_query(base.format("0::long"), {"user.id"})
    assert good.run(rows, now) == [{"n": 1, "user.id": "a", "x": 0}]
