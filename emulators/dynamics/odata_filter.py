"""$filter: parse with `odata-query` and compile the AST into a row predicate.

Parsing is delegated to a real OData grammar (no hand-rolled regexes), then the AST is
compiled once per request into closures with SQL three-valued logic, case-insensitive
string comparison and Dataverse's LIKE wildcards in contains/startswith/endswith. Errors
use the documented texts (unterminated literal, unknown property, incompatible types), so
a client's quoting bug fails here exactly as it would against Dataverse.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException, ParsingException, TokenizingException
from odata_query.grammar import ODataLexer, ODataParser

from emulators.dynamics.errors import DataverseError, bad_property, bad_request
from emulators.dynamics.schema import Column, Table

Pred = Callable[[dict[str, Any]], Any]  # returns True / False / None (unknown)

_EDM = {"String": "Edm.String", "Memo": "Edm.String", "Boolean": "Edm.Boolean",
        "Integer": "Edm.Int32", "BigInt": "Edm.Int64", "Picklist": "Edm.Int32",
        "State": "Edm.Int32", "Status": "Edm.Int32", "DateTime": "Edm.DateTimeOffset",
        "Lookup": "Edm.Guid", "Owner": "Edm.Guid", "Customer": "Edm.Guid",
        "Uniqueidentifier": "Edm.Guid"}
_KIND = {ast.Eq: "Equal", ast.NotEq: "NotEqual", ast.Lt: "LessThan", ast.LtE: "LessThanOrEqual",
         ast.Gt: "GreaterThan", ast.GtE: "GreaterThanOrEqual"}


def to_epoch(value: dt.datetime | dt.date) -> int:
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def _unterminated(text: str) -> int | None:
    """Position (as Dataverse reports it: end of text) of a string literal left open."""
    i, n = 0, len(text)
    while i < n:
        if text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    return n
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        i += 2
                        continue
                    break
                i += 1
        i += 1
    return None


def parse(text: str) -> ast._Node:
    pos = _unterminated(text)
    if pos is not None:
        raise bad_request(f"There is an unterminated literal at position {pos} in '{text}'.")
    try:
        return ODataParser().parse(ODataLexer().tokenize(text))
    except (TokenizingException, ParsingException) as e:
        index = getattr(e.token, "index", len(text)) if e.token is not None else len(text)
        raise bad_request(f"Syntax error at position {index} in '{text}'.") from e
    except ODataException as e:
        raise bad_request(f"Invalid filter expression '{text}': {e}") from e


def like_regex(pattern: str, mode: str) -> re.Pattern[str]:
    """Translate a SQL LIKE fragment (% _ [] [^]) into a case-insensitive regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    core = "".join(out)
    if mode == "contains":
        core = ".*" + core + ".*"
    elif mode == "startswith":
        core = core + ".*"
    else:
        core = ".*" + core
    return re.compile(core, re.IGNORECASE | re.DOTALL)


class _Operand:
    """Either a column accessor or a constant, with the Edm type for error messages."""

    def __init__(self, get: Callable[[dict[str, Any]], Any], edm: str | None,
                 column: Column | None = None, const: bool = False) -> None:
        self.get = get
        self.edm = edm
        self.column = column
        self.const = const


class FilterCompiler:
    def __init__(self, table: Table, text: str) -> None:
        self.table = table
        self.text = text

    def compile(self, node: ast._Node) -> Pred:
        if isinstance(node, ast.BoolOp):
            # A chain of one operator (`id eq a or id eq b or ...`, a thousand long in a
            # read by ids) is flattened: nested closures would exceed Python's recursion
            # limit both compiling and evaluating it. Three-valued logic: None is unknown.
            kind = type(node.op)
            terms: list[Pred] = []
            stack: list[ast._Node] = [node]
            while stack:
                n = stack.pop()
                if isinstance(n, ast.BoolOp) and type(n.op) is kind:
                    stack += [n.right, n.left]
                else:
                    terms.append(self.compile(n))
            if kind is ast.And:
                def _and(r: dict[str, Any]) -> Any:
                    unknown = False
                    for term in terms:
                        v = term(r)
                        if v is False:
                            return False
                        unknown = unknown or not v
                    return None if unknown else True
                return _and

            def _or(r: dict[str, Any]) -> Any:
                unknown = False
                for term in terms:
                    v = term(r)
                    if v is True:
                        return True
                    unknown = unknown or v is None
                return None if unknown else False
            return _or
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.compile(node.operand)

            def _not(r: dict[str, Any]) -> Any:
                v = inner(r)
                return None if v is None else not v
            return _not
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Identifier):
            op = self._operand(node)
            return lambda r: op.get(r)
        raise bad_request(f"The query node {type(node).__name__} is not supported in "
                          f"'{self.text}'.",
                          code="0x80040203")

    # -- operands ---------------------------------------------------------------------
    def _operand(self, node: ast._Node) -> _Operand:
        if isinstance(node, ast.Identifier):
            if node.namespace:
                raise bad_request(f"Functions/namespaces are not supported: '{node.full_name()}'.")
            col = self.table.by_json.get(node.name)
            if col is None:
                raise bad_property(node.name, self.table.logical_name)
            name = col.name
            if col.type in ("String", "Memo"):
                def _get_str(r: dict[str, Any]) -> Any:
                    v = r.get(name)
                    return v.lower() if isinstance(v, str) else v
                return _Operand(_get_str, _EDM[col.type], col)
            return _Operand(lambda r: r.get(name), _EDM.get(col.type), col)
        if isinstance(node, ast.Null):
            return _Operand(lambda r: None, None, const=True)
        if isinstance(node, ast.String):
            s = node.val.lower()
            return _Operand(lambda r: s, "Edm.String", const=True)
        if isinstance(node, ast.Boolean):
            b = node.py_val
            return _Operand(lambda r: b, "Edm.Boolean", const=True)
        if isinstance(node, (ast.Integer, ast.Float)):
            n = node.py_val
            return _Operand(lambda r: n, "Edm.Int32", const=True)
        if isinstance(node, (ast.DateTime, ast.Date)):
            try:
                e = to_epoch(node.py_val)
            except ValueError as exc:
                raise bad_request(f"The DateTimeOffset text '{node.val}' should be in format "
                                  "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value "
                                  "is within valid range.") from exc
            return _Operand(lambda r: e, "Edm.DateTimeOffset", const=True)
        if isinstance(node, ast.GUID):
            g = node.val.lower()
            return _Operand(lambda r: g, "Edm.Guid", const=True)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._operand(node.operand)
            val = inner.get({})
            return _Operand(lambda r: -val, inner.edm, const=True)
        raise bad_request(f"Unsupported operand in '{self.text}'.")

    def _check_types(self, a: _Operand, b: _Operand, kind: str) -> None:
        if a.edm is None or b.edm is None:
            return
        compatible = a.edm == b.edm or {a.edm, b.edm} <= {"Edm.Int32", "Edm.Int64"}
        if not compatible:
            raise bad_request(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{a.edm}' and '{b.edm}' for operator kind '{kind}'.")

    def _compare(self, node: ast.Compare) -> Pred:
        kind = _KIND.get(type(node.comparator))
        if kind is None:
            raise bad_request(f"Operator not supported in '{self.text}'.")
        a, b = self._operand(node.left), self._operand(node.right)
        self._check_types(a, b, kind)
        ga, gb = a.get, b.get
        if isinstance(node.comparator, ast.Eq):
            def _eq(r: dict[str, Any]) -> Any:
                x, y = ga(r), gb(r)
                if x is None or y is None:
                    return x is None and y is None
                return x == y
            return _eq
        if isinstance(node.comparator, ast.NotEq):
            def _ne(r: dict[str, Any]) -> Any:
                x, y = ga(r), gb(r)
                if x is None or y is None:
                    return not (x is None and y is None)
                return x != y
            return _ne
        fn = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
              ast.GtE: operator.ge}[type(node.comparator)]

        def _cmp(r: dict[str, Any]) -> Any:
            x, y = ga(r), gb(r)
            if x is None or y is None:
                return None
            return fn(x, y)
        return _cmp

    def _call(self, node: ast.Call) -> Pred:
        name = node.func.full_name()
        if name not in ("contains", "startswith", "endswith"):
            raise DataverseError(400, "0x80060888",
                                 f"The function '{name}' is not supported by this emulator.")
        if len(node.args) != 2 or not isinstance(node.args[1], ast.String):
            raise bad_request(f"The function '{name}' expects a column and a string literal.")
        col = self._operand(node.args[0])
        if col.edm != "Edm.String":
            raise bad_request(f"No function signature for the function with name '{name}' "
                              "matches the specified arguments.")
        rx = like_regex(node.args[1].val, name)
        get = col.get

        def _like(r: dict[str, Any]) -> Any:
            v = get(r)
            if v is None:
                return None
            return rx.fullmatch(v) is not None
        return _like


def compile_filter(table: Table, text: str) -> tuple[Pred, ast._Node]:
    node = parse(text)
    return FilterCompiler(table, text).compile(node), node


def index_candidates(node: ast._Node, table: Table) -> tuple[str, str] | None:
    """(column, lower-cased value) of an `eq` usable with an index, searching `and` chains."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return index_candidates(node.left, table) or index_candidates(node.right, table)
    if (isinstance(node, ast.Compare) and isinstance(node.comparator, ast.Eq)
            and isinstance(node.left, ast.Identifier) and isinstance(node.right, ast.String)):
        col = node.left.name
        single_keys = {k.columns[0] for k in table.keys if len(k.columns) == 1}
        if col == "emailaddress1" or col in single_keys:
            return col, node.right.val.lower()
    return None
