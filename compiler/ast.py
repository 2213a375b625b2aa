"""The syntax tree of a .chan file: what the user wrote, with where they wrote it.

Nothing here is checked yet; `checker.py` turns a tree into the IR or raises a located error.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """One source text; errors quote its lines."""
    path: str
    text: str

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


@dataclass(frozen=True)
class Loc:
    source: Source
    line: int
    column: int


# ---- expressions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    text: str
    loc: Loc


@dataclass(frozen=True)
class Quantity:
    """A number with a unit written right after it: `58 mV`."""
    number: str
    unit: str
    loc: Loc
    unit_loc: Loc


@dataclass(frozen=True)
class Name:
    id: str
    loc: Loc


@dataclass(frozen=True)
class BinOp:
    op: str            # one of + - * /
    left: "Expr"
    right: "Expr"
    loc: Loc           # of the operator


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Pow:
    base: "Expr"
    exponent: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple
    loc: Loc


@dataclass(frozen=True)
class Comparison:
    op: str            # one of < <= > >=
    left: "Expr"
    right: "Expr"
    loc: Loc


@dataclass(frozen=True)
class Logic:
    op: str            # "and" or "or"
    left: "Condition"
    right: "Condition"
    loc: Loc


Condition = Comparison | Logic


@dataclass(frozen=True)
class Conditional:
    """`then if condition else otherwise`"""
    then: "Expr"
    condition: Condition
    otherwise: "Expr"
    loc: Loc


Expr = Number | Quantity | Name | BinOp | Neg | Pow | Call | Conditional


# ---- statements ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    name: str
    expr: Expr
    loc: Loc


@dataclass(frozen=True)
class Gate:
    name: str
    power: int
    assignments: tuple          # inf/tau or alpha/beta, plus local helpers
    loc: Loc
    power_loc: Loc


@dataclass(frozen=True)
class Channel:
    name: str
    ion: str | None
    assignments: tuple          # parameters and helper expressions, in order
    gates: tuple
    current: Assignment | None
    loc: Loc


@dataclass(frozen=True)
class Synapse:
    name: str
    kind: str                   # exponential, alpha, double_exponential
    assignments: tuple
    loc: Loc
    kind_loc: Loc


@dataclass(frozen=True)
class SynapseUse:
    name: str
    loc: Loc


@dataclass(frozen=True)
class ChannelUse:
    name: str
    overrides: tuple            # of Assignment
    loc: Loc


@dataclass(frozen=True)
class Pool:
    """`pool ca { resting = ...; decay = ...; depth = ... }`: an ion's intracellular concentration."""
    ion: str
    assignments: tuple
    loc: Loc


@dataclass(frozen=True)
class Input:
    name: str
    kind: str
    loc: Loc
    kind_loc: Loc


@dataclass(frozen=True)
class InitialValue:
    target: tuple               # ("v",) or ("NaF", "m") or ("gates",)
    expr: Expr | None           # None means steady_state
    loc: Loc


@dataclass(frozen=True)
class Spike:
    variable: str
    threshold: Expr
    loc: Loc


@dataclass(frozen=True)
class Cell:
    name: str
    assignments: tuple
    channels: tuple             # of ChannelUse
    leak: tuple | None          # of Assignment
    leak_loc: Loc | None
    inputs: tuple
    initial: tuple              # of InitialValue
    spike: Spike | None
    loc: Loc
    pools: tuple = ()           # of Pool
    synapses: tuple = ()        # of SynapseUse


@dataclass(frozen=True)
class Import:
    path: str
    loc: Loc


@dataclass(frozen=True)
class Module:
    source: Source
    imports: tuple
    channels: tuple
    cells: tuple = field(default=())
    synapses: tuple = field(default=())
