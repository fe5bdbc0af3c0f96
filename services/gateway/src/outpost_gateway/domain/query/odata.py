"""OData query options → the contracts' filter tree and list options (docs/api.md, "Collections").

A small hand-written recursive-descent parser, following balena's conventions
(reference/fleet-api-odata.txt):

    filter  := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | primary
    primary := "(" filter ")"
             | func "(" path "," literal ")"          contains, startswith, endswith
             | rel "/" ("any" | "all") "(" [var ":" filter] ")"
             | path op literal                        eq ne gt ge lt le
             | path "in" "(" literal ("," literal)* ")"
    literal := 'text' ('' escapes a quote) | integer | decimal | true | false | null
             | 2026-01-01T00:00:00Z | a GUID

Inside a lambda, fields are named through its variable (``t/key``) and compile to the related
item's fields. Every error is a ``validation_error`` naming the parameter, with the position
(0-based character offset) in the message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from outpost_contracts.errors import validation_error
from outpost_contracts.query import (
    MAX_DEPTH,
    MAX_LIMIT,
    MAX_NODES,
    AllOf,
    And,
    AnyOf,
    Cmp,
    CmpOp,
    Node,
    Not,
    Or,
    OrderBy,
    Scalar,
    count_nodes,
    depth,
)

FILTER = "$filter"
SELECT = "$select"
EXPAND = "$expand"
ORDERBY = "$orderby"
TOP = "$top"
SKIP = "$skip"
COUNT = "$count"
ODATA_PARAMS = frozenset({FILTER, SELECT, EXPAND, ORDERBY, TOP, SKIP, COUNT})
SINGLE_RESOURCE_PARAMS = frozenset({SELECT, EXPAND})

MAX_FILTER_LENGTH = 4000
MAX_EXPAND_DEPTH = 2
MAX_SKIP = 100_000

COMPARISONS: frozenset[str] = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
FUNCTIONS: frozenset[str] = frozenset({"contains", "startswith", "endswith"})
LAMBDAS = frozenset({"any", "all"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})"
)
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_PUNCT = frozenset("(),/:")
_WORD_END = re.compile(r"[A-Za-z0-9_.]")

TokenKind = Literal["name", "string", "number", "literal", "punct", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    value: Scalar = None


def _error(param: str, pos: int, message: str) -> Exception:
    return validation_error(param, f"at position {pos}: {message}")


def tokenize(text: str, param: str = FILTER) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "'":
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise _error(param, i, "unterminated string")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        chars.append("'")
                        j += 2
                        continue
                    break
                chars.append(text[j])
                j += 1
            tokens.append(Token("string", text[i : j + 1], i, "".join(chars)))
            i = j + 1
            continue
        if c in _PUNCT:
            tokens.append(Token("punct", c, i))
            i += 1
            continue
        for pattern in (_DATETIME, _GUID):
            m = pattern.match(text, i)
            if m and not _WORD_END.match(text, m.end()):
                tokens.append(Token("literal", m.group(), i, m.group()))
                i = m.end()
                break
        else:
            m = _NUMBER.match(text, i)
            if m is not None and not _WORD_END.match(text, m.end()):
                raw = m.group()
                tokens.append(Token("number", raw, i, _number(raw, param, i)))
                i = m.end()
                continue
            m = _NAME.match(text, i)
            if m is None:
                raise _error(param, i, f"unexpected character {c!r}")
            tokens.append(Token("name", m.group(), i))
            i = m.end()
    tokens.append(Token("end", "", n))
    return tokens


def _number(raw: str, param: str, pos: int) -> int | float:
    """An integer or a finite decimal. A number no double can hold (``1e999``) is refused
    here: infinity would cross the wire as null and compare as ``IS NULL`` (decision 77).
    Integers keep their digits; the owning service checks them against the field's range."""
    try:
        number: int | float = int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:  # more digits than int() converts
        raise _error(param, pos, "the number is too long") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise _error(param, pos, f"{raw} is out of range")
    return number


_KEYWORD_LITERALS: dict[str, Scalar] = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str, param: str) -> None:
        self.param = param
        self.tokens = tokenize(text, param)
        self.i = 0
        self.nesting = 0
        self.lambda_var: str | None = None

    # --- token helpers ----------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, message: str, tok: Token | None = None) -> Exception:
        return _error(self.param, (tok or self.tok).pos, message)

    def describe(self, tok: Token) -> str:
        return "the end of the expression" if tok.kind == "end" else repr(tok.text)

    def is_punct(self, text: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind == "punct" and t.text == text

    def is_word(self, word: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind == "name" and t.text == word

    def expect_punct(self, text: str) -> Token:
        if not self.is_punct(text):
            raise self.error(f"expected '{text}', found {self.describe(self.tok)}")
        return self.advance()

    def enter(self, opened_by: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH}", opened_by)

    def leave(self) -> None:
        self.nesting -= 1

    # --- grammar ----------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("an expression is required")
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.describe(self.tok)}")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(items=_flatten(items, Or))

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else And(items=_flatten(items, And))

    def parse_unary(self) -> Node:
        if self.is_word("not") and not self.is_punct("/", self.peek()):
            self.enter(self.advance())
            item = self.parse_unary()
            self.leave()
            return Not(item=item)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.tok
        if self.is_punct("("):
            self.enter(self.advance())
            node = self.parse_or()
            self.leave()
            self.expect_punct(")")
            return node
        if tok.kind != "name":
            raise self.error(f"expected a field, a function or '(', found {self.describe(tok)}")
        if self.is_punct("(", self.peek()):
            return self.parse_function()
        return self.parse_comparison()

    def parse_function(self) -> Node:
        name = self.advance()
        if name.text not in FUNCTIONS:
            raise self.error(
                f"unknown function '{name.text}'; allowed: {', '.join(sorted(FUNCTIONS))}", name
            )
        self.expect_punct("(")
        path = self.parse_field()
        self.expect_punct(",")
        value = self.parse_literal()
        self.expect_punct(")")
        if not isinstance(value, str):
            raise self.error(f"{name.text}() needs a text value", name)
        op: CmpOp = name.text  # type: ignore[assignment]
        return Cmp(field=path, op=op, value=value)

    def parse_comparison(self) -> Node:
        start = self.tok
        navigates = self.is_punct("/", self.peek()) and self.peek(2).text in LAMBDAS
        if navigates and start.text != self.lambda_var:
            return self.parse_lambda()
        field_name = self.parse_field()
        op = self.tok
        if op.kind != "name" or (op.text not in COMPARISONS and op.text != "in"):
            if op.kind == "name":
                raise self.error(
                    f"unknown operator '{op.text}'; allowed: eq, ne, gt, ge, lt, le, in", op
                )
            raise self.error(
                f"expected an operator after '{field_name}', found {self.describe(op)}"
            )
        self.advance()
        if op.text == "in":
            self.expect_punct("(")
            values = [self.parse_literal()]
            while self.is_punct(","):
                self.advance()
                values.append(self.parse_literal())
            self.expect_punct(")")
            return Cmp(field=field_name, op="in", value=values)
        cmp: CmpOp = op.text  # type: ignore[assignment]
        return Cmp(field=field_name, op=cmp, value=self.parse_literal())

    def parse_field(self) -> str:
        """A field: ``name`` at the top level, ``var/name`` inside a lambda."""
        tok = self.tok
        if tok.kind != "name":
            raise self.error(f"expected a field, found {self.describe(tok)}")
        self.advance()
        if self.lambda_var is None:
            if self.is_punct("/"):
                raise self.error(
                    f"'{tok.text}/…' navigates a relation: use {tok.text}/any(x: …) or"
                    f" {tok.text}/all(x: …)",
                    tok,
                )
            return tok.text
        if tok.text != self.lambda_var:
            raise self.error(
                f"inside a lambda, name fields through its variable, e.g."
                f" {self.lambda_var}/{tok.text}",
                tok,
            )
        self.expect_punct("/")
        inner = self.tok
        if inner.kind != "name":
            raise self.error(f"expected a field after '{tok.text}/'")
        self.advance()
        if self.is_punct("/"):
            raise self.error("nested navigation is not supported", inner)
        return inner.text

    def parse_lambda(self) -> Node:
        relation = self.advance()
        if self.lambda_var is not None:
            raise self.error("a lambda inside a lambda is not supported", relation)
        self.expect_punct("/")
        kind = self.advance()
        self.expect_punct("(")
        if self.is_punct(")"):
            self.advance()
            if kind.text == "all":
                raise self.error("all() needs a predicate, e.g. all(t: t/key eq 'x')", kind)
            return AnyOf(relation=relation.text)
        var = self.tok
        if var.kind != "name" or not self.is_punct(":", self.peek()):
            raise self.error(f"expected 'variable:' in {kind.text}(…)")
        self.advance()
        self.advance()
        predicate: Node | None
        if self.tok.kind == "name" and self.tok.text == "true" and self.is_punct(")", self.peek()):
            self.advance()  # balena's rel/any(x:true)
            predicate = None
        else:
            self.lambda_var = var.text
            self.enter(kind)
            predicate = self.parse_or()
            self.leave()
            self.lambda_var = None
        self.expect_punct(")")
        if kind.text == "any":
            return AnyOf(relation=relation.text, predicate=predicate)
        if predicate is None:
            raise self.error("all(x: true) is always true; give a predicate", kind)
        return AllOf(relation=relation.text, predicate=predicate)

    def parse_literal(self) -> Scalar:
        tok = self.tok
        if tok.kind in ("string", "number", "literal"):
            self.advance()
            return tok.value
        if tok.kind == "name" and tok.text in _KEYWORD_LITERALS:
            self.advance()
            return _KEYWORD_LITERALS[tok.text]
        raise self.error(f"expected a value, found {self.describe(tok)}")


def _flatten(items: list[Node], kind: type[And] | type[Or]) -> list[Node]:
    out: list[Node] = []
    for item in items:
        if isinstance(item, kind):
            out.extend(item.items)
        else:
            out.append(item)
    return out


def check_size(node: Node, param: str = FILTER) -> Node:
    if depth(node) > MAX_DEPTH:
        raise validation_error(param, f"nested deeper than {MAX_DEPTH}")
    if count_nodes(node) > MAX_NODES:
        raise validation_error(param, f"more than {MAX_NODES} conditions")
    return node


def parse_filter(text: str, param: str = FILTER) -> Node:
    if len(text) > MAX_FILTER_LENGTH:
        raise validation_error(param, f"longer than {MAX_FILTER_LENGTH} characters")
    return check_size(_Parser(text, param).parse(), param)


# --- $select, $expand, $orderby, $top, $skip, $count ----------------------------------------


def _names(text: str, param: str) -> list[str]:
    """A comma-separated list of field names."""
    names: list[str] = []
    pos = 0
    for part in text.split(","):
        name = part.strip()
        if not _NAME.fullmatch(name):
            raise _error(param, pos, f"expected a field name, found {part!r}")
        if name not in names:
            names.append(name)
        pos += len(part) + 1
    return names


def parse_select(text: str, param: str = SELECT) -> list[str]:
    return _names(text, param)


@dataclass(frozen=True)
class ExpandItem:
    """``rel`` or ``rel($select=a,b;$expand=…)``."""

    name: str
    select: list[str] | None = None
    expand: list[ExpandItem] = field(default_factory=list)


def _split_top_level(text: str, sep: str, param: str, offset: int) -> list[tuple[int, str]]:
    parts: list[tuple[int, str]] = []
    level, start = 0, 0
    for i, c in enumerate(text):
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level < 0:
                raise _error(param, offset + i, "unbalanced ')'")
        elif c == sep and level == 0:
            parts.append((offset + start, text[start:i]))
            start = i + 1
    if level != 0:
        raise _error(param, offset + len(text), "unbalanced '('")
    parts.append((offset + start, text[start:]))
    return parts


def parse_expand(
    text: str, param: str = EXPAND, *, level: int = 1, offset: int = 0
) -> list[ExpandItem]:
    if level > MAX_EXPAND_DEPTH:
        raise _error(param, offset, f"$expand is nested deeper than {MAX_EXPAND_DEPTH}")
    items: list[ExpandItem] = []
    for pos, part in _split_top_level(text, ",", param, offset):
        stripped = part.strip()
        pos += len(part) - len(part.lstrip())
        m = _NAME.match(stripped)
        if m is None:
            raise _error(param, pos, f"expected a relation name, found {part!r}")
        name, rest = m.group(), stripped[m.end() :].strip()
        select: list[str] | None = None
        nested: list[ExpandItem] = []
        if rest:
            if not (rest.startswith("(") and rest.endswith(")")):
                raise _error(param, pos + m.end(), f"unexpected {rest!r} after '{name}'")
            inner_offset = pos + stripped.index("(") + 1
            for opt_pos, opt in _split_top_level(rest[1:-1], ";", param, inner_offset):
                key, eq, value = opt.strip().partition("=")
                if not eq:
                    raise _error(param, opt_pos, f"expected $select=… or $expand=…, found {opt!r}")
                if key == SELECT:
                    select = _names(value, param)
                elif key == EXPAND:
                    nested = parse_expand(value, param, level=level + 1, offset=opt_pos)
                else:
                    raise _error(param, opt_pos, f"unsupported option {key!r} inside $expand")
        items.append(ExpandItem(name=name, select=select, expand=nested))
    return items


def parse_orderby(text: str, param: str = ORDERBY) -> list[OrderBy]:
    order: list[OrderBy] = []
    pos = 0
    for part in text.split(","):
        words = part.split()
        if not 1 <= len(words) <= 2 or not _NAME.fullmatch(words[0]):
            raise _error(param, pos, f"expected 'field [asc|desc]', found {part!r}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise _error(param, pos, f"expected asc or desc, found {words[1]!r}")
        if any(o.field == words[0] for o in order):
            raise _error(param, pos, f"'{words[0]}' is given twice")
        order.append(OrderBy(field=words[0], desc=direction == "desc"))
        pos += len(part) + 1
    return order


def _int(text: str, param: str, low: int, high: int) -> int:
    digits = text.strip()
    if not re.fullmatch(r"[0-9]+", digits):
        raise validation_error(param, "must be a non-negative integer")
    digits = digits.lstrip("0") or "0"
    value = int(digits) if len(digits) <= len(str(high)) else high + 1
    if not low <= value <= high:
        raise validation_error(param, f"must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class ODataOptions:
    filter: Node | None = None
    select: list[str] | None = None
    expand: list[ExpandItem] | None = None
    order_by: list[OrderBy] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False


def parse_odata(
    params: Sequence[tuple[str, str]], *, allowed: frozenset[str] = ODATA_PARAMS
) -> ODataOptions:
    """Read every ``$…`` parameter; an unknown or repeated one is a validation_error."""
    seen: dict[str, str] = {}
    for name, value in params:
        if not name.startswith("$"):
            continue
        if name not in allowed:
            raise validation_error(
                name, f"unknown query option; allowed here: {', '.join(sorted(allowed))}"
            )
        if name in seen:
            raise validation_error(name, "may be given only once")
        seen[name] = value
    count = False
    if COUNT in seen:
        if seen[COUNT] not in ("true", "false"):
            raise validation_error(COUNT, "must be true or false")
        count = seen[COUNT] == "true"
    return ODataOptions(
        filter=parse_filter(seen[FILTER]) if FILTER in seen else None,
        select=parse_select(seen[SELECT]) if SELECT in seen else None,
        expand=parse_expand(seen[EXPAND]) if EXPAND in seen else None,
        order_by=parse_orderby(seen[ORDERBY]) if ORDERBY in seen else [],
        top=_int(seen[TOP], TOP, 1, MAX_LIMIT) if TOP in seen else None,
        skip=_int(seen[SKIP], SKIP, 0, MAX_SKIP) if SKIP in seen else 0,
        count=count,
    )
