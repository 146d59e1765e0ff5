"""ES|QL as the shipped rules write it: parsed by Elasticsearch's own grammar, run on plain rows.

The test engine (osmem-server) has no ES|QL, so the ES|QL rules are checked here in two steps:

- :func:`parse` runs the ANTLR lexer and parser generated from Elasticsearch's ES|QL grammar
  (PyPI ``esql-parser``) and returns every syntax error with its line and column;
- :func:`compile_query` turns the parse tree into commands that run on rows (dicts of dotted
  field names), so the test runs the rule's own text -- its WHERE, EVAL, STATS and functions --
  on the documents shipped into osmem, instead of a hand-written copy of its logic.

The evaluator knows the commands and functions the rules use and refuses anything else by
name (:class:`Unsupported`), so a new rule using more of ES|QL fails loudly here rather than
being half-understood. It keeps the type rules the rules depend on and Elasticsearch enforces
before running a query: literals are ``integer``, ``COUNT`` is ``long``, and every value of a
``CASE`` must be of one type (Elasticsearch's analyzer rejects ``CASE(c, long_value, 0)``).
Columns are checked as Elasticsearch's analyzer does: a name must be a field of the index
templates or a column an earlier EVAL or STATS made, and after STATS only its columns remain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import TerminalNode
from esql_parser.EsqlBaseLexer import EsqlBaseLexer
from esql_parser.EsqlBaseParser import EsqlBaseParser as P

Row = dict[str, Any]
Expr = Callable[[Row, "Context"], Any]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class EsqlError(ValueError):
    """What Elasticsearch would refuse (unknown column, mismatched types)."""


class Unsupported(EsqlError):
    """Valid ES|QL this evaluator does not run; named so the gap is plain."""


class Long(int):
    """An ES|QL ``long`` (an integer literal is an ``integer``; ``COUNT`` returns ``long``)."""


@dataclass
class Context:
    now: dt.datetime


def esql_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Long):
        return "long"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "keyword"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.timedelta):
        return "time_duration"
    raise TypeError(value)


# --- parsing ----------------------------------------------------------------------------------


class _Collect(ErrorListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.errors: list[str] = []

    def syntaxError(  # noqa: N802 (ANTLR's name)
        self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        self.errors.append(f"line {line}:{column + 1}: {msg}")


def parse(query: str) -> tuple[P.SingleStatementContext, list[str]]:
    """The parse tree and every lexer and parser error, as ``line L:C: message``."""
    errors = _Collect()
    lexer = EsqlBaseLexer(InputStream(query))
    lexer.removeErrorListeners()
    lexer.addErrorListener(errors)
    parser = P(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(errors)
    tree = parser.singleStatement()
    return tree, errors.errors


def commands(tree: P.SingleStatementContext) -> list[Any]:
    """The source command and each piped processing command, in order."""
    out: list[Any] = []
    q = tree.query()
    while isinstance(q, P.CompositeQueryContext):
        out.append(q.processingCommand().getChild(0))
        q = q.query()
    out.append(q.sourceCommand().getChild(0))
    return out[::-1]


def _nodes(tree: Any, kind: type) -> Iterable[Any]:
    if isinstance(tree, kind):
        yield tree
    if not isinstance(tree, TerminalNode):
        for child in tree.getChildren():
            yield from _nodes(child, kind)


def function_names(tree: Any) -> set[str]:
    return {f.functionName().getText().upper() for f in _nodes(tree, P.FunctionExpressionContext)}


# --- expressions ------------------------------------------------------------------------------

SPANS = {
    **dict.fromkeys(("millisecond", "milliseconds", "ms"), dt.timedelta(milliseconds=1)),
    **dict.fromkeys(("second", "seconds", "sec", "s"), dt.timedelta(seconds=1)),
    **dict.fromkeys(("minute", "minutes", "min"), dt.timedelta(minutes=1)),
    **dict.fromkeys(("hour", "hours", "h"), dt.timedelta(hours=1)),
    **dict.fromkeys(("day", "days", "d"), dt.timedelta(days=1)),
    **dict.fromkeys(("week", "weeks", "w"), dt.timedelta(weeks=1)),
}
DIFF_UNITS = {
    **dict.fromkeys(("millisecond", "milliseconds", "ms"), dt.timedelta(milliseconds=1)),
    **dict.fromkeys(("second", "seconds", "ss", "s"), dt.timedelta(seconds=1)),
    **dict.fromkeys(("minute", "minutes", "mi", "n"), dt.timedelta(minutes=1)),
    **dict.fromkeys(("hour", "hours", "hh"), dt.timedelta(hours=1)),
    **dict.fromkeys(("day", "days", "dd", "d"), dt.timedelta(days=1)),
    **dict.fromkeys(("week", "weeks", "wk", "ww"), dt.timedelta(weeks=1)),
}
AGGREGATES = {"COUNT", "COUNT_DISTINCT", "MAX", "MIN", "SUM"}


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    numeric = (int, float)
    if not (
        (isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool))
        or type(a) is type(b)
        or (isinstance(a, dt.datetime) and isinstance(b, dt.datetime))
    ):
        raise EsqlError(f"cannot compare [{esql_type(a)}] {op} [{esql_type(b)}]")
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, dt.datetime) and isinstance(b, dt.timedelta) and op in "+-":
        return a + b if op == "+" else a - b
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)):
        raise EsqlError(f"cannot compute [{esql_type(a)}] {op} [{esql_type(b)}]")
    if op in "/%" and b == 0:
        return None  # ES|QL: null, with a warning
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "+": lambda x, y: x + y,
        "-": lambda x, y: x - y,
        "*": lambda x, y: x * y,
        "/": lambda x, y: x / y,
        "%": lambda x, y: x - y * int(x / y),  # Java: the sign of the dividend
    }
    result = ops[op](a, b)
    if isinstance(a, float) or isinstance(b, float):
        return float(result)
    if op == "/":
        result = int(a / b)  # integer division truncates towards zero
    return Long(result) if isinstance(a, Long) or isinstance(b, Long) else int(result)


def _to_string(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{v.microsecond // 1000:03d}Z"
        )
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _date_trunc(span: Any, d: Any) -> dt.datetime | None:
    if d is None:
        return None
    if not isinstance(span, dt.timedelta) or not isinstance(d, dt.datetime):
        raise EsqlError("DATE_TRUNC takes a time span and a date")
    return EPOCH + ((d - EPOCH) // span) * span


def _date_diff(unit: Any, start: Any, end: Any) -> int | None:
    if start is None or end is None:
        return None
    if not isinstance(unit, str) or unit.lower() not in DIFF_UNITS:
        raise EsqlError(f"DATE_DIFF: unknown unit {unit!r}")
    delta = end - start
    size = DIFF_UNITS[unit.lower()]
    n = abs(delta) // size
    return n if delta >= dt.timedelta(0) else -n


def _case(text: str, args: list[Expr]) -> Expr:
    if len(args) < 2:
        raise EsqlError(f"[{text}] needs at least two arguments")
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    otherwise = args[-1] if len(args) % 2 else None

    def run(row: Row, ctx: Context) -> Any:
        # every value is evaluated, to hold CASE to Elasticsearch's one-type rule on each row
        values = [v(row, ctx) for _, v in pairs] + ([otherwise(row, ctx)] if otherwise else [])
        types = [esql_type(v) for v in values]
        known = [t for t in types if t != "null"]
        for pos, t in enumerate(types):
            if known and t not in ("null", known[0]):
                position = 2 * pos + 2 if pos < len(pairs) else len(args)
                raise EsqlError(
                    f"argument {position} of [{text}] must be [{known[0]}], found value "
                    f"of type [{t}]"
                )
        for (cond, _), value in zip(pairs, values[: len(pairs)], strict=True):
            if cond(row, ctx) is True:
                return value
        return values[-1] if otherwise else None

    return run


def _scalar(name: str, text: str, args: list[Expr]) -> Expr:
    def unary(f: Callable[[Any], Any]) -> Expr:
        if len(args) != 1:
            raise EsqlError(f"[{text}] takes one argument")
        (a,) = args
        return lambda row, ctx: f(a(row, ctx))

    if name == "NOW":
        if args:
            raise EsqlError(f"[{text}] takes no argument")
        return lambda row, ctx: ctx.now
    if name == "CASE":
        return _case(text, args)
    if name == "COALESCE":
        return lambda row, ctx: next(
            (v for v in (a(row, ctx) for a in args) if v is not None), None
        )
    if name == "TO_STRING":
        return unary(_to_string)
    if name == "TO_LONG":
        return unary(lambda v: None if v is None else Long(int(v)))
    if name == "DATE_TRUNC" and len(args) == 2:
        span, d = args
        return lambda row, ctx: _date_trunc(span(row, ctx), d(row, ctx))
    if name == "DATE_DIFF" and len(args) == 3:
        u, s, e = args
        return lambda row, ctx: _date_diff(u(row, ctx), s(row, ctx), e(row, ctx))
    raise Unsupported(f"function {name} ({text})")


class Compiler:
    """Turns expression parse trees into ``f(row, ctx)``, checking names against ``columns``."""

    def __init__(self, columns: set[str]) -> None:
        self.columns = columns

    def expr(self, node: Any) -> Expr:
        method = getattr(self, "_" + type(node).__name__.removesuffix("Context"), None)
        if method is None:
            raise Unsupported(f"{type(node).__name__.removesuffix('Context')}: {node.getText()}")
        return method(node)  # type: ignore[no-any-return]

    # booleanExpression
    def _BooleanDefault(self, n: Any) -> Expr:  # noqa: N802
        return self.expr(n.valueExpression())

    def _LogicalNot(self, n: Any) -> Expr:  # noqa: N802
        inner = self.expr(n.booleanExpression())

        def run(row: Row, ctx: Context) -> Any:
            v = inner(row, ctx)
            return None if v is None else not v

        return run

    def _LogicalBinary(self, n: Any) -> Expr:  # noqa: N802
        left, right = (self.expr(x) for x in n.booleanExpression())
        if n.AND():

            def both(row: Row, ctx: Context) -> Any:
                a, b = left(row, ctx), right(row, ctx)
                return False if a is False or b is False else (None if None in (a, b) else True)

            return both

        def either(row: Row, ctx: Context) -> Any:
            a, b = left(row, ctx), right(row, ctx)
            return True if a is True or b is True else (None if None in (a, b) else False)

        return either

    def _LogicalIn(self, n: Any) -> Expr:  # noqa: N802
        first, *options = (self.expr(x) for x in n.valueExpression())
        negate = n.NOT() is not None

        def run(row: Row, ctx: Context) -> Any:
            v = first(row, ctx)
            if v is None:
                return None
            found = any(_compare("==", v, o(row, ctx)) for o in options)
            return found != negate

        return run

    def _IsNull(self, n: Any) -> Expr:  # noqa: N802
        inner = self.expr(n.valueExpression())
        negate = n.NOT() is not None
        return lambda row, ctx: (inner(row, ctx) is None) != negate

    # valueExpression
    def _ValueExpressionDefault(self, n: Any) -> Expr:  # noqa: N802
        return self.expr(n.operatorExpression())

    def _Comparison(self, n: Any) -> Expr:  # noqa: N802
        left, right = self.expr(n.left), self.expr(n.right)
        op = n.comparisonOperator().getText()
        return lambda row, ctx: _compare(op, left(row, ctx), right(row, ctx))

    # operatorExpression
    def _OperatorExpressionDefault(self, n: Any) -> Expr:  # noqa: N802
        return self.expr(n.primaryExpression())

    def _ArithmeticBinary(self, n: Any) -> Expr:  # noqa: N802
        left, right = self.expr(n.left), self.expr(n.right)
        op = n.operator.text
        return lambda row, ctx: _arith(op, left(row, ctx), right(row, ctx))

    def _ArithmeticUnary(self, n: Any) -> Expr:  # noqa: N802
        inner = self.expr(n.operatorExpression())
        if n.operator.text == "+":
            return inner
        return lambda row, ctx: _arith("*", inner(row, ctx), -1)

    # primaryExpression
    def _ConstantDefault(self, n: Any) -> Expr:  # noqa: N802
        return self.expr(n.constant())

    def _ParenthesizedExpression(self, n: Any) -> Expr:  # noqa: N802
        return self.expr(n.booleanExpression())

    def _Dereference(self, n: Any) -> Expr:  # noqa: N802
        name = n.qualifiedName().getText()
        if name not in self.columns:
            raise EsqlError(f"Unknown column [{name}]")
        return lambda row, ctx: row.get(name)

    def _InlineCast(self, n: Any) -> Expr:  # noqa: N802
        inner = self.expr(n.primaryExpression())
        to = n.dataType().getText().lower()
        casts: dict[str, Callable[[Any], Any]] = {
            "long": lambda v: Long(int(v)),
            "integer": lambda v: int(v),
            "int": lambda v: int(v),
            "double": lambda v: float(v),
            "keyword": _to_string,
            "string": _to_string,
        }
        if to not in casts:
            raise Unsupported(f"cast to {to}")
        cast = casts[to]
        return lambda row, ctx: (lambda v: None if v is None else cast(v))(inner(row, ctx))

    def _Function(self, n: Any) -> Expr:  # noqa: N802
        f = n.functionExpression()
        name = f.functionName().getText().upper()
        if name in AGGREGATES:
            raise EsqlError(f"aggregate [{f.getText()}] outside STATS")
        args = [self.expr(a) for a in f.booleanExpression()]
        return _scalar(name, f.getText(), args)

    # constant
    def _NullLiteral(self, n: Any) -> Expr:  # noqa: N802
        return lambda row, ctx: None

    def _BooleanLiteral(self, n: Any) -> Expr:  # noqa: N802
        v = n.getText().lower() == "true"
        return lambda row, ctx: v

    def _StringLiteral(self, n: Any) -> Expr:  # noqa: N802
        text = n.getText()
        if text.startswith('"""'):
            v = text[3:-3]
        else:
            v = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return lambda row, ctx: v

    def _IntegerLiteral(self, n: Any) -> Expr:  # noqa: N802
        v = int(n.getText())
        v = v if -(2**31) <= v < 2**31 else Long(v)
        return lambda row, ctx: v

    def _DecimalLiteral(self, n: Any) -> Expr:  # noqa: N802
        v = float(n.getText())
        return lambda row, ctx: v

    def _QualifiedIntegerLiteral(self, n: Any) -> Expr:  # noqa: N802
        count = int(n.integerValue().getText())
        unit = n.UNQUOTED_IDENTIFIER().getText().lower()
        if unit not in SPANS:
            raise Unsupported(f"time span unit {unit}")
        span = count * SPANS[unit]
        return lambda row, ctx: span


# --- commands ---------------------------------------------------------------------------------


@dataclass
class Command:
    """One piped command: ``row_wise`` ones (WHERE, EVAL) commute with a time-range filter."""

    name: str
    run: Callable[[list[Row], Context], list[Row]]
    row_wise: bool
    uses_now: bool


@dataclass
class Query:
    indices: list[str]
    commands: list[Command]

    def run(self, rows: list[Row], now: dt.datetime) -> list[Row]:
        ctx = Context(now)
        for c in self.commands:
            rows = c.run(rows, ctx)
        return rows

    def split(self) -> tuple[Query, Query]:
        """The leading row-wise commands that do not read NOW(), and the rest: the first part
        can run once over all documents and the rest at each scheduled run."""
        i = 0
        while i < len(self.commands) and self.commands[i].row_wise:
            if self.commands[i].uses_now:
                break
            i += 1
        return Query(self.indices, self.commands[:i]), Query(self.indices, self.commands[i:])


def _target(field: Any) -> str:
    return (field.qualifiedName() or field.booleanExpression()).getText()


def _where(node: Any, columns: set[str]) -> Command:
    cond = Compiler(columns).expr(node.booleanExpression())

    def run(rows: list[Row], ctx: Context) -> list[Row]:
        return [r for r in rows if cond(r, ctx) is True]

    return Command("WHERE", run, True, "NOW" in function_names(node))


def _eval(node: Any, columns: set[str]) -> Command:
    steps: list[tuple[str, Expr]] = []
    for field in node.fields().field():
        steps.append((_target(field), Compiler(set(columns)).expr(field.booleanExpression())))
        columns.add(steps[-1][0])  # later fields of the same EVAL see earlier ones

    def run(rows: list[Row], ctx: Context) -> list[Row]:
        out = []
        for r in rows:
            r = dict(r)
            for name, f in steps:
                r[name] = f(r, ctx)
            out.append(r)
        return out

    return Command("EVAL", run, True, "NOW" in function_names(node))


def _aggregate(name: str, text: str, arg: Expr | None) -> Callable[[list[Row], Context], Any]:
    def values(rows: list[Row], ctx: Context) -> list[Any]:
        assert arg is not None
        return [v for v in (arg(r, ctx) for r in rows) if v is not None]

    if name == "COUNT":
        if arg is None:
            return lambda rows, ctx: Long(len(rows))
        return lambda rows, ctx: Long(len(values(rows, ctx)))
    if arg is None:
        raise EsqlError(f"[{text}] needs an argument")
    if name == "COUNT_DISTINCT":
        return lambda rows, ctx: Long(len(set(values(rows, ctx))))
    if name in ("MAX", "MIN"):
        pick = max if name == "MAX" else min
        return lambda rows, ctx: (lambda vs: pick(vs) if vs else None)(values(rows, ctx))
    if name == "SUM":

        def total(rows: list[Row], ctx: Context) -> Any:
            vs = values(rows, ctx)
            if not vs:
                return None
            return float(sum(vs)) if any(isinstance(v, float) for v in vs) else Long(sum(vs))

        return total
    raise Unsupported(f"aggregate {name}")


def _stats(node: Any, columns: set[str]) -> Command:
    aggs: list[tuple[str, Callable[[list[Row], Context], Any]]] = []
    for agg in node.aggFields().aggField() if node.aggFields() else []:
        if agg.booleanExpression() is not None:
            raise Unsupported(f"STATS ... WHERE ({agg.getText()})")
        field = agg.field()
        body = field.booleanExpression()
        fn = next(iter(_nodes(body, P.FunctionExpressionContext)), None)
        if fn is None or fn.getText() != body.getText():
            raise Unsupported(f"STATS expression other than one aggregate: {body.getText()}")
        name = fn.functionName().getText().upper()
        if name not in AGGREGATES:
            raise Unsupported(f"aggregate {name}")
        args = fn.booleanExpression()
        arg = Compiler(columns).expr(args[0]) if args else None
        aggs.append((_target(field), _aggregate(name, fn.getText(), arg)))
    groups: list[tuple[str, Expr]] = []
    for field in node.fields().field() if node.fields() else []:
        groups.append((_target(field), Compiler(columns).expr(field.booleanExpression())))
    columns.clear()
    columns.update(name for name, _ in aggs + groups)  # type: ignore[operator]

    def run(rows: list[Row], ctx: Context) -> list[Row]:
        buckets: dict[tuple[Any, ...], list[Row]] = {}
        for r in rows:
            buckets.setdefault(tuple(g(r, ctx) for _, g in groups), []).append(r)
        if not groups and not buckets:
            buckets[()] = []
        out = []
        for key, members in buckets.items():
            row = {name: f(members, ctx) for name, f in aggs}
            row.update(zip([name for name, _ in groups], key, strict=True))
            out.append(row)
        return out

    return Command("STATS", run, False, "NOW" in function_names(node))


def _limit(node: Any, columns: set[str]) -> Command:
    n = int(node.constant().getText())
    return Command("LIMIT", lambda rows, ctx: rows[:n], False, False)


def compile_query(query: str, fields: set[str]) -> Query:
    """The query as runnable commands; ``fields`` are the index templates' field names.

    Raises EsqlError for a syntax error (with every position), an unknown column or a type
    Elasticsearch would refuse; Unsupported for valid ES|QL this evaluator does not run.
    """
    tree, errors = parse(query)
    if errors:
        raise EsqlError("; ".join(errors))
    source, *rest = commands(tree)
    if not isinstance(source, P.FromCommandContext):
        raise Unsupported(f"source command {source.getText()}")
    spec = source.indexPatternAndMetadataFields()
    if spec.metadata() is not None:
        raise Unsupported("FROM ... METADATA")
    indices = [p.getText() for p in spec.indexPattern()]
    columns = set(fields)
    builders = {
        P.WhereCommandContext: _where,
        P.EvalCommandContext: _eval,
        P.StatsCommandContext: _stats,
        P.LimitCommandContext: _limit,
    }
    out = []
    for node in rest:
        build = builders.get(type(node))
        if build is None:
            raise Unsupported(f"command {node.getChild(0).getText().upper()}")
        out.append(build(node, columns))
    return Query(indices, out)


def referenced_fields(query: str) -> set[str]:
    """Every qualified name the query reads, less the columns its own EVAL/STATS define."""
    tree, _ = parse(query)
    defined: set[str] = set()
    read: set[str] = set()
    for node in commands(tree):
        if isinstance(node, (P.EvalCommandContext, P.StatsCommandContext)):
            fields = []
            if isinstance(node, P.EvalCommandContext):
                fields = node.fields().field()
            else:
                if node.aggFields():
                    fields += [a.field() for a in node.aggFields().aggField()]
                if node.fields():
                    fields += node.fields().field()
            for field in fields:
                for name in _nodes(field.booleanExpression(), P.QualifiedNameContext):
                    if name.getText() not in defined:
                        read.add(name.getText())
                if field.qualifiedName() is not None:
                    defined.add(field.qualifiedName().getText())
        else:
            for name in _nodes(node, P.QualifiedNameContext):
                if name.getText() not in defined:
                    read.add(name.getText())
    return read


def typed_row(source: dict[str, Any], types: dict[str, str]) -> Row:
    """A document's ``_source`` as a row: dotted names, values typed by the field's mapping
    (dates as datetimes, longs as Long); a multi-valued field is null, as single-value ES|QL
    operators see it."""
    row: Row = {}

    def walk(doc: dict[str, Any], prefix: str) -> None:
        for k, v in doc.items():
            name = prefix + k
            if isinstance(v, dict):
                walk(v, name + ".")
                continue
            if isinstance(v, list):
                v = v[0] if len(v) == 1 else None
            if v is not None and types.get(name) == "date":
                v = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            elif v is not None and types.get(name) == "long":
                v = Long(v)
            row[name] = v

    walk(source, "")
    return row
