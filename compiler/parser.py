"""Text → syntax tree. Lark does the parsing; this module adds locations and readable syntax errors."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args

from .errors import HHCError, SourceLocation

from . import ast

GRAMMAR_FILE = Path(__file__).with_name("grammar.lark")

# What a terminal is called in a syntax error, for the terminals a user would not recognise by name.
_TERMINAL_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": 'a "quoted path"',
    "_SEP": "end of statement", "$END": "end of file", "STEADY": "steady_state",
}


class _ParenNewlines:
    """Post-lexer: a newline inside ( ) continues the expression instead of ending the statement."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for token in stream:
            if token.type == "LPAR":
                depth += 1
            elif token.type == "RPAR":
                depth = max(0, depth - 1)
            elif token.type == "_SEP" and depth > 0:
                continue
            yield token


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR_FILE.read_text(), parser="lalr", postlex=_ParenNewlines(),
                propagate_positions=True, maybe_placeholders=True, start=["start", "expr"])


def location(source: ast.Source, line: int, column: int) -> SourceLocation:
    return SourceLocation(source.path, line, column, source.line(line))


def error_at(loc: ast.Loc, message: str, hint: str | None = None) -> HHCError:
    return HHCError(message, location(loc.source, loc.line, loc.column), hint)


def _describe_expected(names) -> str:
    parser = _lark()
    words = set()
    for name in names:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
            words.add(f"'{pattern.value}'" if pattern.type == "str" else name.lower())
        except KeyError:
            words.add(name.lower())
    return ", ".join(sorted(words))


def _describe_token(token: Token) -> str:
    if token.type == "_SEP":
        return "end of line" if "\n" in token.value else f"'{token.value.strip()[:1] or ';'}'"
    if token.type == "$END":
        return "end of file"
    return f"'{token.value}'"


def parse(text: str, path: str = "<string>", start: str = "start"):
    """Parse .chan text into a syntax tree; syntax errors become located HHCErrors.
    With start="expr", parse one expression (used for values in experiment files)."""
    text = text.removeprefix("\ufeff")            # a byte-order mark is not an error
    source = ast.Source(path, text)
    try:
        tree = _lark().parse(text, start=start)
    except lark.exceptions.UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        raise HHCError(f"unexpected character {char!r}",
                       location(source, exc.line, exc.column)) from None
    except lark.exceptions.UnexpectedToken as exc:
        token = exc.token
        line, column = token.line or 1, token.column or 1
        if token.type == "$END":  # Lark reports EOF without a position
            lines = text.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        elif token.type == "_SEP" and token.value.startswith("#"):
            pass
        expected = _describe_expected(exc.expected)
        raise HHCError(f"unexpected {_describe_token(token)}; expected {expected}",
                       location(source, line, column)) from None
    except lark.exceptions.UnexpectedEOF as exc:
        lines = text.splitlines() or [""]
        raise HHCError(f"unexpected end of file; expected {_describe_expected(exc.expected)}",
                       location(source, len(lines), len(lines[-1]) + 1)) from None
    _check_depth(tree, source)
    try:
        result = _ToAst(source).transform(tree)
    except lark.exceptions.VisitError as exc:
        # Lark wraps exceptions raised in transformer callbacks (e.g. "declares its ion twice");
        # unwrap our own located errors so they reach the user as HHCErrors, not as VisitError.
        if isinstance(exc.orig_exc, HHCError):
            raise exc.orig_exc from None
        raise
    return result


# Deeper syntax trees than this are refused with a located error: the tree → AST transform and
# the checker recurse once per level (and SymPy more), so absurd nesting such as 5000 unary minus
# signs would otherwise end in a RecursionError. No hand-written model comes near this.
MAX_DEPTH = 200


def _check_depth(tree, source: ast.Source):
    """Iteratively measure the tree's depth; raise at the first node deeper than MAX_DEPTH."""
    stack = [(tree, 1, None)]
    while stack:
        node, depth, parent = stack.pop()
        if not isinstance(node, lark.Tree):
            continue
        if depth > MAX_DEPTH:
            line = getattr(node.meta, "line", 1) if not node.meta.empty else 1
            column = getattr(node.meta, "column", 1) if not node.meta.empty else 1
            chain = node.data if node.data in ("add", "sub", "mul", "div") else parent
            if chain in ("add", "sub", "mul", "div"):     # a long flat chain, not nesting
                what = "terms added or subtracted" if chain in ("add", "sub") else "factors"
                raise HHCError(f"expression too long: more than {MAX_DEPTH} {what} in one chain",
                               location(source, line, column),
                               "split it into named helpers: part1 = a + b + ...; part2 = ...; total = part1 + part2")
            raise HHCError(f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                           location(source, line, column),
                           "split it into named helpers: x = ...; y = ... x ...")
        stack.extend((child, depth + 1, node.data) for child in node.children)


def parse_file(path: str | Path) -> ast.Module:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HHCError(f"no such file: {path}") from None
    except OSError as exc:
        raise HHCError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")           # a byte-order mark is not an error
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        line_text = data[start: data.find(b"\n", exc.start) if b"\n" in data[exc.start:] else len(data)]
        raise HHCError(f"this file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                       SourceLocation(str(path), line, exc.start - start + 1,
                                      line_text.decode("utf-8", errors="replace"))) from None
    return parse(text, str(path))


class _ToAst(Transformer):
    """Lark tree → ast dataclasses. Every node keeps its location."""

    def __init__(self, source: ast.Source):
        super().__init__()
        self.source = source

    def _loc(self, item) -> ast.Loc:
        if isinstance(item, Token):
            return ast.Loc(self.source, item.line, item.column)
        return ast.Loc(self.source, item.line, item.column)

    # ---- expressions
    @v_args(inline=True)
    def number(self, tok):
        return ast.Number(str(tok), self._loc(tok))

    @v_args(inline=True)
    def quantity(self, num, unit):
        return ast.Quantity(str(num), str(unit), self._loc(num), self._loc(unit))

    @v_args(inline=True)
    def name(self, tok):
        return ast.Name(str(tok), self._loc(tok))

    @v_args(meta=True)
    def call(self, meta, children):
        func, *args = children
        args = tuple(a for a in args if a is not None)
        return ast.Call(str(func), args, self._loc(func))

    def _binop(op):  # noqa: N805 - a small factory for the four operators
        @v_args(meta=True)
        def build(self, meta, children):
            left, right = children
            return ast.BinOp(op, left, right, _expr_loc(left))
        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Neg(children[0], ast.Loc(self.source, meta.line, meta.column))

    @v_args(meta=True)
    def unary(self, meta, children):  # unary plus
        return children[0]

    @v_args(meta=True)
    def pow(self, meta, children):
        base, exponent = children
        return ast.Pow(base, exponent, _expr_loc(base))

    @v_args(meta=True)
    def comparison(self, meta, children):
        left, op, right = children
        return ast.Comparison(str(op), left, right, self._loc(op))

    @v_args(meta=True)
    def both(self, meta, children):
        return ast.Logic("and", children[0], children[1], _expr_loc(children[0]))

    @v_args(meta=True)
    def either(self, meta, children):
        return ast.Logic("or", children[0], children[1], _expr_loc(children[0]))

    @v_args(meta=True)
    def conditional(self, meta, children):
        then, condition, otherwise = children
        return ast.Conditional(then, condition, otherwise, _expr_loc(then))

    # ---- statements
    @v_args(inline=True)
    def assignment(self, name, expr):
        return ast.Assignment(str(name), expr, self._loc(name))

    @v_args(meta=True)
    def gate(self, meta, children):
        name, power, *assignments = children
        if not str(power).isdigit():
            raise error_at(self._loc(power), f"the power of gate {name} must be a positive integer, "
                                             f"got {power}")
        return ast.Gate(str(name), int(power), tuple(a for a in assignments if a is not None),
                        ast.Loc(self.source, meta.line, meta.column), self._loc(power))

    @v_args(inline=True)
    def ion_stmt(self, name):
        return ("ion", str(name), self._loc(name))

    @v_args(meta=True)
    def current_stmt(self, meta, children):
        return ast.Assignment("current", children[0], ast.Loc(self.source, meta.line, meta.column))

    @v_args(meta=True)
    def channel(self, meta, children):
        name, *stmts = children
        ion, assignments, gates, current = None, [], [], None
        for stmt in stmts:
            if stmt is None:
                continue
            if isinstance(stmt, tuple) and stmt[0] == "ion":
                if ion is not None:
                    raise error_at(stmt[2], f"channel {name} declares its ion twice")
                ion = stmt[1]
            elif isinstance(stmt, ast.Gate):
                gates.append(stmt)
            elif isinstance(stmt, ast.Assignment) and stmt.name == "current" and stmt.loc and _is_current_stmt(stmt):
                if current is not None:
                    raise error_at(stmt.loc, f"channel {name} has two current expressions")
                current = stmt
            else:
                assignments.append(stmt)
        return ast.Channel(str(name), ion, tuple(assignments), tuple(gates), current, self._loc(name))

    @v_args(meta=True)
    def override(self, meta, children):
        name, expr = children
        return ast.Assignment(str(name), expr, self._loc(name))

    @v_args(meta=True)
    def channel_use(self, meta, children):
        name, *overrides = children
        return ast.ChannelUse(str(name), tuple(o for o in overrides if o is not None), self._loc(name))

    @v_args(meta=True)
    def synapse(self, meta, children):
        name, kind, *assignments = children
        return ast.Synapse(str(name), str(kind), tuple(a for a in assignments if a is not None), self._loc(name),
                           self._loc(kind))

    @v_args(meta=True)
    def synapses_stmt(self, meta, children):
        return ("synapses", tuple(ast.SynapseUse(str(c), self._loc(c)) for c in children))

    @v_args(meta=True)
    def channels_stmt(self, meta, children):
        return ("channels", tuple(children))

    @v_args(meta=True)
    def leak(self, meta, children):
        return ("leak", tuple(c for c in children if c is not None),
                ast.Loc(self.source, meta.line, meta.column))

    @v_args(meta=True)
    def pool(self, meta, children):
        ion, *assignments = children
        return ast.Pool(str(ion), tuple(a for a in assignments if a is not None), self._loc(ion))

    @v_args(inline=True)
    def input_stmt(self, name, kind):
        return ast.Input(str(name), str(kind), self._loc(name), self._loc(kind))

    @v_args(meta=True)
    def dotted_name(self, meta, children):
        return tuple(str(c) for c in children if c is not None), self._loc(children[0])

    @v_args(inline=True)
    def init_value(self, target, value):
        names, loc = target
        expr = None if isinstance(value, Token) and value.type == "STEADY" else value
        return ast.InitialValue(names, expr, loc)

    @v_args(meta=True)
    def initial(self, meta, children):
        return ("initial", tuple(c for c in children if c is not None))

    @v_args(meta=True)
    def spike(self, meta, children):
        variable, threshold = children
        return ast.Spike(str(variable), threshold, ast.Loc(self.source, meta.line, meta.column))

    @v_args(meta=True)
    def cell(self, meta, children):
        name, *stmts = children
        assignments, channels, leak, leak_loc, inputs, initial, spike = [], [], None, None, [], [], None
        pools, synapses = [], []
        for stmt in stmts:
            if stmt is None:
                continue
            if isinstance(stmt, ast.Assignment):
                assignments.append(stmt)
            elif isinstance(stmt, ast.Pool):
                pools.append(stmt)
            elif isinstance(stmt, ast.Input):
                inputs.append(stmt)
            elif isinstance(stmt, ast.Spike):
                if spike is not None:
                    raise error_at(stmt.loc, f"cell {name} has two spike conditions")
                spike = stmt
            elif stmt[0] == "channels":
                channels.extend(stmt[1])
            elif stmt[0] == "synapses":
                synapses.extend(stmt[1])
            elif stmt[0] == "leak":
                if leak is not None:
                    raise error_at(stmt[2], f"cell {name} has two leak blocks")
                leak, leak_loc = stmt[1], stmt[2]
            elif stmt[0] == "initial":
                initial.extend(stmt[1])
        return ast.Cell(str(name), tuple(assignments), tuple(channels), leak, leak_loc, tuple(inputs),
                        tuple(initial), spike, self._loc(name), tuple(pools), tuple(synapses))

    @v_args(inline=True)
    def import_stmt(self, path):
        return ast.Import(str(path)[1:-1], self._loc(path))

    def start(self, children):
        children = [c for c in children if c is not None]
        return ast.Module(self.source,
                          tuple(c for c in children if isinstance(c, ast.Import)),
                          tuple(c for c in children if isinstance(c, ast.Channel)),
                          tuple(c for c in children if isinstance(c, ast.Cell)),
                          tuple(c for c in children if isinstance(c, ast.Synapse)))


def _is_current_stmt(stmt: ast.Assignment) -> bool:
    return stmt.name == "current"


def _expr_loc(expr) -> ast.Loc:
    return expr.loc
