"""`calculate_output` formulas of `multi` graders (§11.2, §11.3): a hand-written parser, never `eval`.

Grammar (U39 defaults; `FormulaOptions` switches unary signs, `^` associativity, min/max arity and the log base)::

    expr    := term  (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | power
    power   := primary ("^" unary)?                    # right-assoc: -2^2 = -4, 2^3^2 = 512
    primary := NUMBER | IDENT | FUNC "(" expr ("," expr)* ")" | "(" expr ")"

A name followed by `(` is a call; any other name is a variable. A formula compiles once into nested closures over
IEEE doubles; math errors (U40) raise `FormulaEvalError`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .options import FormulaOptions

Env = Mapping[str, float]
Node = Callable[[Env], float]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^(),])|(?P<bad>\S))"
)
FUNCTIONS: tuple[str, ...] = ("min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log")


class FormulaParseError(ValueError):
    """The formula does not parse, or names something that is not a key of `graders` (§11.3)."""


class FormulaEvalError(ArithmeticError):
    """A math error while evaluating: division by zero, sqrt/log domain, overflow, non-finite result (U40)."""


class _Tok(NamedTuple):
    kind: str
    text: str
    pos: int


def _tokenize(source: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:  # only trailing whitespace is left
            break
        kind = m.lastgroup or "end"
        text = m.group(kind)
        start = m.start(kind)
        if kind == "bad":
            raise FormulaParseError(f"unexpected character {text!r} at position {start}")
        if text == "**":
            raise FormulaParseError(f"'**' at position {start} is not supported; use '^' for powers")
        tokens.append(_Tok(kind, text, start))
        pos = m.end()
    tokens.append(_Tok("end", "", len(source)))
    return tokens


def _checked(value: float, what: str) -> float:
    if math.isinf(value) or math.isnan(value):
        raise FormulaEvalError(f"{what} is not finite ({value})")
    return value


def _div_error(a: float, b: float) -> float:
    if b == 0.0:
        raise FormulaEvalError(f"division by zero ({a!r} / 0)")
    return a / b


def _div_ieee(a: float, b: float) -> float:
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        raise FormulaEvalError(f"overflow in {a!r} ^ {b!r}") from None
    except ValueError:
        raise FormulaEvalError(f"{a!r} ^ {b!r} is undefined") from None


def _sqrt(x: float) -> float:
    if x < 0:
        raise FormulaEvalError(f"sqrt of a negative number ({x!r})")
    return math.sqrt(x)


def _log_fn(base: str) -> Callable[[float], float]:
    log = math.log if base == "e" else math.log10

    def _log(x: float) -> float:
        if not x > 0:
            raise FormulaEvalError(f"log of a non-positive number ({x!r})")
        return log(x)

    return _log


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise FormulaEvalError(f"overflow in exp({x!r})") from None


def _rounding(fn: Callable[[float], int], name: str) -> Callable[[float], float]:
    def _round(x: float) -> float:
        try:
            return float(fn(x))
        except (OverflowError, ValueError):
            raise FormulaEvalError(f"{name}({x!r}) is undefined") from None

    return _round


class Formula:
    """A compiled formula: `evaluate(env)` maps sub-grader rewards to the multi's reward."""

    __slots__ = ("source", "variables", "_root")

    def __init__(self, source: str, variables: frozenset[str], root: Node) -> None:
        self.source = source
        self.variables = variables
        self._root = root

    def evaluate(self, env: Env) -> float:
        """The formula's value; raises `FormulaEvalError` on a math error or a non-finite result (§11.3)."""
        try:
            value = self._root(env)
        except ZeroDivisionError as exc:  # float ops that Python raises on, e.g. inf % 0 is not in the grammar
            raise FormulaEvalError(str(exc)) from None
        except OverflowError as exc:
            raise FormulaEvalError(f"overflow: {exc}") from None
        except RecursionError:
            raise FormulaEvalError("the formula is nested too deeply to evaluate") from None
        return _checked(float(value), "the result")

    def __repr__(self) -> str:
        return f"Formula({self.source!r})"


class _Parser:
    def __init__(self, source: str, opts: FormulaOptions, known: frozenset[str] | None) -> None:
        self.tokens = _tokenize(source)
        self.i = 0
        self.opts = opts
        self.known = known
        self.used: set[str] = set()
        self.binary: dict[str, Callable[[float, float], float]] = {
            "+": operator.add,
            "-": operator.sub,
            "*": operator.mul,
            "/": _div_error if opts.division_by_zero == "error" else _div_ieee,
        }
        self.unary_funcs: dict[str, Callable[[float], float]] = {
            "abs": abs,
            "floor": _rounding(math.floor, "floor"),
            "ceil": _rounding(math.ceil, "ceil"),
            "exp": _exp,
            "sqrt": _sqrt,
            "log": _log_fn(opts.log_base),
        }

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def _fail(self, what: str) -> FormulaParseError:
        t = self.tok
        found = "end of formula" if t.kind == "end" else repr(t.text)
        return FormulaParseError(f"expected {what} at position {t.pos}, found {found}")

    def _eat(self, text: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == text:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise FormulaParseError("the formula is empty")
        node = self.expr()
        if self.tok.kind != "end":
            raise self._fail("an operator or the end of the formula")
        return node

    def expr(self) -> Node:
        return self._chain(self.term, "+-")

    def term(self) -> Node:
        return self._chain(self.unary, "*/")

    def _chain(self, operand: Callable[[], Node], ops: str) -> Node:
        """A left-associative run `x op y op z …`, evaluated in a loop so long sums never nest deeply."""
        first = operand()
        rest: list[tuple[Callable[[float, float], float], Node]] = []
        while self.tok.kind == "op" and self.tok.text in ops:
            rest.append((self.binary[self.tok.text], self._advance_then(operand)))
        if not rest:
            return first
        steps = tuple(rest)

        def _run(env: Env) -> float:
            acc = first(env)
            for fn, node in steps:
                acc = fn(acc, node(env))
            return acc

        return _run

    def _advance_then(self, operand: Callable[[], Node]) -> Node:
        self.i += 1
        return operand()

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in "+-":
            if not self.opts.unary:
                raise FormulaParseError(f"unary '{self.tok.text}' at position {self.tok.pos} is not allowed")
            op = self.tok.text
            self.i += 1
            operand = self.unary()
            return _neg(operand) if op == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.opts.power_assoc == "right":
            if self._eat("^"):
                return _power(base, self.unary())
            return base
        while self._eat("^"):
            base = _power(base, self.signed_primary())
        return base

    def signed_primary(self) -> Node:
        """Left-associative `^` takes a signed primary on its right (2^-1), never a further power."""
        if self.tok.kind == "op" and self.tok.text in "+-" and self.opts.unary:
            op = self.tok.text
            self.i += 1
            operand = self.signed_primary()
            return _neg(operand) if op == "-" else operand
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            value = float(t.text)
            return lambda env: value
        if t.kind == "name":
            self.i += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(t)
            if self.known is not None and t.text not in self.known:
                raise FormulaParseError(
                    f"unknown variable '{t.text}' at position {t.pos}: variables must be keys of 'graders'"
                    + (f" ({', '.join(sorted(self.known))})" if self.known else "")
                )
            self.used.add(t.text)
            name = t.text
            return lambda env: env[name]
        if self._eat("("):
            node = self.expr()
            if not self._eat(")"):
                raise self._fail("')'")
            return node
        raise self._fail("a number, a variable, a function call or '('")

    def call(self, name_tok: _Tok) -> Node:
        name = name_tok.text
        if name not in FUNCTIONS:
            raise FormulaParseError(
                f"unknown function '{name}' at position {name_tok.pos}; functions are {', '.join(FUNCTIONS)}"
            )
        self.i += 1  # "("
        args: list[Node] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.expr())
            while self._eat(","):
                args.append(self.expr())
        if not self._eat(")"):
            raise self._fail("',' or ')'")
        if name in ("min", "max"):
            least = self.opts.minmax_min_args
            if len(args) < least:
                raise FormulaParseError(f"'{name}' at position {name_tok.pos} needs at least {least} argument(s)")
            return _minmax(min if name == "min" else max, tuple(args))
        if len(args) != 1:
            raise FormulaParseError(f"'{name}' at position {name_tok.pos} takes exactly 1 argument, got {len(args)}")
        return _apply(self.unary_funcs[name], args[0])


def _neg(a: Node) -> Node:
    return lambda env: -a(env)


def _power(a: Node, b: Node) -> Node:
    return lambda env: _pow(a(env), b(env))


def _apply(fn: Callable[[float], float], a: Node) -> Node:
    return lambda env: fn(a(env))


def _minmax(fn: Callable[..., float], args: tuple[Node, ...]) -> Node:
    def _call(env: Env) -> float:
        values = [arg(env) for arg in args]
        if any(math.isnan(v) for v in values):
            return math.nan
        return fn(values)

    return _call


def parse_formula(source: str, opts: FormulaOptions, variables: frozenset[str] | None = None) -> Formula:
    """Compile `source`; with `variables`, every identifier must be one of them. Raises `FormulaParseError`."""
    if not isinstance(source, str):
        raise FormulaParseError("the formula must be a string")
    parser = _Parser(source, opts, variables)
    try:
        root = parser.parse()
    except RecursionError:
        raise FormulaParseError("the formula is nested too deeply") from None
    return Formula(source, frozenset(parser.used), root)
