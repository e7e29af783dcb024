"""A small evaluator of the expr-lang expressions conveyor's manifests use, with expr's own semantics.

Argo CD notifications (notifications-engine pkg/triggers/service.go) and Argo Rollouts (utils/evaluate/evaluate.go)
both run github.com/expr-lang/expr. This covers the subset the triggers and the AnalysisTemplate use, faithfully:

- member access `a.b` on a map gives nil for a missing key, and is a runtime error on nil (expr vm/runtime
  runtime.go `Fetch`: "cannot fetch b from <nil>"); `a?.b` gives nil on nil instead;
- `a[i]` on a list: out of range is a runtime error; `and`/`&&`, `or`/`||` short-circuit; `not`/`!`;
- `==`/`!=` (nil equals only nil, numbers compare by value), `<`, `<=`, `>`, `>=`, `+ - * /`, `x in [..]`;
- `any(list, {predicate with #})`, `all(...)`, `len(x)`, `isNaN(x)`.

A runtime error raises `ExprError`; the callers map it as the platforms do (a `when` that errors does not trigger;
a successCondition that errors makes the measurement Error).
"""

from __future__ import annotations

import math
import re
from typing import Any

TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>\?\.|==|!=|<=|>=|&&|\|\||[-+*/<>!()\[\]{},.#])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


class ExprError(Exception):
    """A runtime error of the expression, as expr would raise it."""


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SyntaxError(f"cannot read {text[pos:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match[kind]))
        pos = match.end()
    return out


BINARY = {"or": 1, "||": 1, "and": 2, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4}
BINARY |= {"+": 5, "-": 5, "*": 6, "/": 6}


class Parser:
    def __init__(self, text: str) -> None:
        self.toks, self.i = tokens(text), 0

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise SyntaxError("unexpected end")
        tok = self.toks[self.i]
        if want is not None and tok[1] != want:
            raise SyntaxError(f"expected {want!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        node = self.expr(0)
        if self.i != len(self.toks):
            raise SyntaxError(f"trailing {self.toks[self.i :]}")
        return node

    def expr(self, floor: int) -> tuple:
        left = self.unary()
        while (op := self.peek()) in BINARY and BINARY[op] > floor:
            self.take()
            left = ("bin", op, left, self.expr(BINARY[op]))
        return left

    def unary(self) -> tuple:
        if self.peek() in ("not", "!"):
            self.take()
            return ("not", self.unary())
        if self.peek() == "-":
            self.take()
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def primary(self) -> tuple:
        kind, text = self.take()
        if kind == "num":
            return ("lit", float(text) if "." in text or "e" in text.lower() else int(text))
        if kind == "str":
            return ("lit", bytes(text[1:-1], "utf-8").decode("unicode_escape"))
        if text == "(":
            node = self.expr(0)
            self.take(")")
            return node
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.expr(0))
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return ("list", items)
        if text == "{":
            body = self.expr(0)
            self.take("}")
            return ("closure", body)
        if text == "#":
            return ("pointer",)
        if kind == "name":
            if text in ("nil", "true", "false"):
                return ("lit", {"nil": None, "true": True, "false": False}[text])
            if self.peek() == "(":
                self.take()
                args = []
                while self.peek() != ")":
                    args.append(self.expr(0))
                    if self.peek() == ",":
                        self.take()
                self.take(")")
                return ("call", text, args)
            return ("var", text)
        raise SyntaxError(f"unexpected {text!r}")

    def postfix(self, node: tuple) -> tuple:
        while self.peek() in (".", "?.", "["):
            op = self.take()[1]
            if op == "[":
                index = self.expr(0)
                self.take("]")
                node = ("index", node, index)
            else:
                node = ("member", node, self.take()[1], op == "?.")
        return node


def _fetch(value: Any, key: Any) -> Any:
    if value is None:
        raise ExprError(f"cannot fetch {key} from <nil>")
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list | str):
        if not isinstance(key, int):
            raise ExprError(f"cannot use {key!r} as an index")
        index = key + len(value) if key < 0 else key
        if not 0 <= index < len(value):
            raise ExprError(f"index out of range: {key} (array length is {len(value)})")
        return value[index]
    raise ExprError(f"cannot fetch {key} from {type(value).__name__}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, a: Any, b: Any) -> bool:
    if not (_number(a) and _number(b)):
        raise ExprError(f"invalid operation: {a!r} {op} {b!r}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(text: str, env: dict[str, Any]) -> Any:
    return _eval(Parser(text).parse(), env, None)


def _eval(node: tuple, env: dict[str, Any], pointer: Any) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        if node[1] not in env:
            raise ExprError(f"unknown name {node[1]}")
        return env[node[1]]
    if kind == "pointer":
        return pointer
    if kind == "list":
        return [_eval(item, env, pointer) for item in node[1]]
    if kind == "member":
        base = _eval(node[1], env, pointer)
        return None if base is None and node[3] else _fetch(base, node[2])
    if kind == "index":
        return _fetch(_eval(node[1], env, pointer), _eval(node[2], env, pointer))
    if kind == "not":
        value = _eval(node[1], env, pointer)
        if not isinstance(value, bool):
            raise ExprError(f"invalid operation: ! {value!r}")
        return not value
    if kind == "neg":
        return -_eval(node[1], env, pointer)
    if kind == "call":
        name, args = node[1], node[2]
        if name in ("any", "all"):
            items = _eval(args[0], env, pointer)
            if not isinstance(items, list):
                raise ExprError(f"cannot iterate {items!r}")
            results = (_eval(args[1][1], env, item) is True for item in items)
            return any(results) if name == "any" else all(results)
        values = [_eval(a, env, pointer) for a in args]
        if name == "len":
            return len(values[0])
        if name == "isNaN":
            return math.isnan(values[0])
        raise ExprError(f"unknown function {name}")
    op, left = node[1], node[2]
    a = _eval(left, env, pointer)
    if op in ("and", "&&", "or", "||"):
        if not isinstance(a, bool):
            raise ExprError(f"invalid operation: {a!r} {op}")
        if (op in ("and", "&&")) != a:
            return a
        b = _eval(node[3], env, pointer)
        if not isinstance(b, bool):
            raise ExprError(f"invalid operation: {op} {b!r}")
        return b
    b = _eval(node[3], env, pointer)
    if op == "==":
        return a == b and (a is None) == (b is None)
    if op == "!=":
        return not (a == b and (a is None) == (b is None))
    if op == "in":
        return a in b
    if op in ("<", "<=", ">", ">="):
        return _compare(op, a, b)
    if not (_number(a) and _number(b)):
        raise ExprError(f"invalid operation: {a!r} {op} {b!r}")
    if op == "/":
        return float(a) / float(b) if b else (math.nan if a == 0 else math.copysign(math.inf, a))
    return {"+": a + b, "-": a - b, "*": a * b}[op]
