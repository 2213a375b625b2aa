"""NeuroML2 → .chan: `ionChannelHH` channels (standard gate types and the custom ComponentTypes
hhc writes, or any custom type built from Parameters, Constants and DerivedVariables) and simple
single-compartment cells. Anything else is refused with the element and line, never dropped.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import sympy
from sympy.printing.str import StrPrinter

from hhc.compiler import ir, units
from hhc.compiler.errors import HHCError, SourceLocation

# NeuroML unit → (.chan unit text, scale to that unit). "per_ms" is written "1/ms".
_UNITS = {
    "mV": "mV", "V": "V", "ms": "ms", "s": "s", "per_ms": "/ms", "per_s": "/s", "Hz": "Hz", "kHz": "kHz",
    "pS": "pS", "nS": "nS", "uS": "uS", "mS": "mS", "S": "S",
    "S_per_m2": "S/m2", "mS_per_cm2": "mS/cm2", "S_per_cm2": "S/cm2", "uS_per_cm2": "uS/cm2",
    "F_per_m2": "F/m2", "uF_per_cm2": "uF/cm2",
    "pF": "pF", "nF": "nF", "uF": "uF", "F": "F",
    "pA": "pA", "nA": "nA", "uA": "uA", "mA": "mA", "A": "A",
    "um": "um", "cm": "cm", "m": "m", "um2": "um2", "cm2": "cm2", "m2": "m2",
}
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"

STANDARD_RATES = {"HHExpRate", "HHSigmoidRate", "HHExpLinearRate"}
STANDARD_VARIABLES = {"HHExpVariable", "HHSigmoidVariable", "HHExpLinearVariable"}


def _strip(tag) -> str:
    return tag.split("}", 1)[1] if isinstance(tag, str) and "}" in tag else str(tag)


@dataclass
class _Source:
    path: str
    lines: list[str]

    def error(self, element, message: str, hint: str | None = None) -> HHCError:
        line = getattr(element, "sourceline", None) or 0
        if line:
            text = self.lines[line - 1] if line <= len(self.lines) else ""
            column = max(1, text.find("<") + 1)
            return HHCError(message, SourceLocation(self.path, line, column, text), hint)
        return HHCError(f"{self.path}: {message}", hint=hint)


def parse_quantity(text: str, src: _Source, element, what: str) -> tuple[float, str]:
    """'-40mV' → (-40.0, 'mV'); '1per_ms' → (1.0, '/ms') in .chan spelling."""
    m = re.fullmatch(rf"\s*({_NUMBER})\s*([A-Za-z_0-9]*)\s*", text or "")
    if not m:
        raise src.error(element, f"{what} = {text!r} is not a NeuroML quantity")
    number, unit = float(m.group(1)), m.group(2)
    if unit and unit not in _UNITS:
        raise src.error(element, f"{what} = {text!r}: unit {unit!r} is not supported by hhc import")
    return number, _UNITS.get(unit, "")


def fmt(x: float) -> str:
    s = f"{x:.12g}"
    if "e" in s:
        mantissa, exp = s.split("e")
        s = f"{mantissa}e{int(exp)}"
    return s


def q_text(value: tuple[float, str]) -> str:
    number, unit = value
    if not unit:
        return fmt(number)
    if unit.startswith("/"):
        return f"{fmt(number)} / {unit[1:]}"
    return f"{fmt(number)} {unit}"


class ChanPrinter(StrPrinter):
    """SymPy → .chan expression text (units by name, decimals, '^')."""

    def _print_Symbol(self, expr):
        unit = units.unit_of_symbol(expr)
        return unit.name if unit else expr.name

    def _print_Rational(self, expr):
        return fmt(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return fmt(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if e == -1:
            return f"1/({self._print(base)})"
        return f"({self._print(base)})^({self._print(e)})"

    def _print_exprel(self, expr):
        return f"exprel({self._print(expr.args[0])})"


def _sym_quantity(value: tuple[float, str]) -> sympy.Expr:
    number, unit = value
    num = sympy.Float(number, 15)
    if not unit:
        return num
    if number == 1:
        num = sympy.Integer(1)
    if unit.startswith("/"):
        return num / units.unit_symbol(unit[1:])
    if "/" in unit:
        a, b = unit.split("/")
        return num * units.unit_symbol(a) / units.unit_symbol(b)
    return num * units.unit_symbol(unit)


@dataclass
class _Gate:
    name: str
    power: int
    lines: list[str] = field(default_factory=list)


class Importer:
    def __init__(self, path: str | Path, text: str | None = None):
        from lxml import etree
        self.path = str(path)
        if text is None:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise HHCError(f"cannot read {path}: {exc}") from None
        self.src = _Source(self.path, text.splitlines())
        try:
            parser = etree.XMLParser(remove_comments=True)
            self.root = etree.fromstring(text.encode(), parser)
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or 0
            raise HHCError(f"not well-formed XML: {exc.msg}",
                           SourceLocation(self.path, line, max(1, exc.offset or 1),
                                          self.src.lines[line - 1] if 0 < line <= len(self.src.lines) else ""))
        if _strip(self.root.tag) != "neuroml":
            raise self.src.error(self.root, f"<{_strip(self.root.tag)}> is not a NeuroML2 document (<neuroml>)")
        self.types = {el.get("name"): el for el in self.root if _strip(el.tag) == "ComponentType"}

    # ---------------------------------------------------------------------------------------
    def _children(self, el, tag=None):
        return [c for c in el if isinstance(c.tag, str) and (tag is None or _strip(c.tag) == tag)]

    def _standard(self, el, type_name: str, kind: str) -> str:
        rate = el.get("rate")
        mid = parse_quantity(el.get("midpoint"), self.src, el, "midpoint")
        scale = parse_quantity(el.get("scale"), self.src, el, "scale")
        if rate is None or el.get("midpoint") is None or el.get("scale") is None:
            raise self.src.error(el, f"{type_name} needs rate, midpoint and scale")
        r = q_text(parse_quantity(rate, self.src, el, "rate"))
        if mid[0] == 0:
            shifted = "v"
        else:
            shifted = f"(v {'+' if mid[0] < 0 else '-'} {q_text((abs(mid[0]), mid[1]))})"
        x = f"{shifted} / ({q_text(scale)})"
        if type_name in ("HHExpRate", "HHExpVariable"):
            return f"{r} * exp({x})"
        if type_name in ("HHSigmoidRate", "HHSigmoidVariable"):
            return f"{r} / (1 + exp(-{x}))"
        return f"{r} / exprel(-{x})"       # x / (1 - exp(-x)), in the safe form

    def _custom(self, el, type_name: str, exposure: str) -> str:
        ct = self.types.get(type_name)
        if ct is None:
            raise self.src.error(el, f"unknown component type {type_name!r} (neither a standard NeuroML gate "
                                     f"type hhc imports nor a ComponentType in this file)")
        base = ct.get("extends", "")
        if "Conc" in base or any(_strip(r.tag) == "Requirement" and r.get("name") != "v"
                                 for r in self._children(ct)):
            raise self.src.error(ct, f"ComponentType {type_name!r} depends on more than v ({base}); "
                                     f"concentration-dependent rates are not supported by hhc")
        env: dict[str, sympy.Expr] = {}
        for c in self._children(ct):
            tag = _strip(c.tag)
            if tag == "Constant":
                env[c.get("name")] = _sym_quantity(parse_quantity(c.get("value"), self.src, c, c.get("name")))
            elif tag == "Parameter":
                value = el.get(c.get("name"))
                if value is None:
                    raise self.src.error(el, f"<{_strip(el.tag)}> does not set parameter {c.get('name')!r} of "
                                             f"{type_name}")
                env[c.get("name")] = _sym_quantity(parse_quantity(value, self.src, el, c.get("name")))
            elif tag in ("Dynamics", "Exposure", "Requirement"):
                continue
            else:
                raise self.src.error(c, f"<{tag}> in ComponentType {type_name!r} is not supported by hhc import")
        dynamics = self._children(ct, "Dynamics")
        if len(dynamics) != 1:
            raise self.src.error(ct, f"ComponentType {type_name!r} needs one <Dynamics>")
        result = None
        for d in self._children(dynamics[0]):
            tag = _strip(d.tag)
            name = d.get("name")
            if tag == "DerivedVariable":
                env[name] = self._lems_expr(d.get("value"), env, d)
                if d.get("exposure") == exposure or name == exposure:
                    result = env[name]
            elif tag == "ConditionalDerivedVariable":
                env[name] = self._exprel_case(d, env)
                if d.get("exposure") == exposure or name == exposure:
                    result = env[name]
            else:
                raise self.src.error(d, f"<{tag}> in the dynamics of {type_name!r} is not supported by hhc "
                                        f"import (only derived variables)")
        if result is None:
            raise self.src.error(ct, f"ComponentType {type_name!r} does not define {exposure!r}")
        return ChanPrinter().doprint(result)

    def _lems_expr(self, text: str, env: dict, el) -> sympy.Expr:
        if text is None:
            raise self.src.error(el, "derived variable without a value")
        py = text.replace("^", "**")
        if re.search(r"\.(gt|lt|geq|leq|eq|neq|and|or)\.", py):
            raise self.src.error(el, f"conditions in {text!r} are not supported by hhc import")
        local = {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "v": ir.V}
        local.update({k: v for k, v in env.items()})
        try:
            from sympy.parsing.sympy_parser import parse_expr
            expr = parse_expr(py, local_dict=local, evaluate=False)
        except (sympy.SympifyError, SyntaxError, TypeError) as exc:
            raise self.src.error(el, f"cannot read the expression {text!r}: {exc}") from None
        unknown = [s for s in expr.free_symbols if s != ir.V and not units.unit_of_symbol(s)]
        if unknown:
            raise self.src.error(el, f"expression {text!r} uses {', '.join(sorted(map(str, unknown)))}, "
                                     f"which hhc import cannot resolve (only v, Parameters, Constants and "
                                     f"derived variables)")
        return expr

    def _exprel_case(self, el, env) -> sympy.Expr:
        """The one conditional hhc understands: exprel written as two cases."""
        cases = self._children(el, "Case")
        for case in cases:
            m = re.fullmatch(r"\s*(\w+)\s*\.neq\.\s*0\s*", case.get("condition") or "")
            if m and m.group(1) in env:
                x = m.group(1)
                value = (case.get("value") or "").replace(" ", "")
                if value == f"(exp({x})-1)/{x}":
                    return ir.exprel(env[x])
        raise self.src.error(el, "conditional derived variables are only imported in the form "
                                 "'x .neq. 0: (exp(x) - 1)/x' (exprel)")

    def _rate_text(self, el, kind: str) -> str:
        type_name = el.get("type")
        if type_name is None:
            raise self.src.error(el, f"<{_strip(el.tag)}> has no type")
        if kind == "rate" and type_name in STANDARD_RATES:
            return self._standard(el, type_name, kind)
        if kind == "variable" and type_name in STANDARD_VARIABLES:
            return self._standard(el, type_name, kind)
        if kind == "time" and type_name == "fixedTimeCourse":
            return q_text(parse_quantity(el.get("tau"), self.src, el, "tau"))
        exposure = {"rate": "r", "variable": "x", "time": "t"}[kind]
        return self._custom(el, type_name, exposure)

    def _gate(self, el) -> _Gate:
        tag = _strip(el.tag)
        gid = _ident(el.get("id"))
        try:
            power = int(el.get("instances", "1"))
        except ValueError:
            raise self.src.error(el, f"gate {gid}: instances must be an integer") from None
        gate = _Gate(gid, power)
        if self._children(el, "q10Settings"):
            raise self.src.error(self._children(el, "q10Settings")[0],
                                 "q10Settings (temperature scaling) is not supported by hhc import")
        parts = {_strip(c.tag): c for c in self._children(el) if _strip(c.tag) != "notes"}
        if tag == "gateHHrates" and set(parts) == {"forwardRate", "reverseRate"}:
            gate.lines.append(f"alpha = {self._rate_text(parts['forwardRate'], 'rate')}")
            gate.lines.append(f"beta = {self._rate_text(parts['reverseRate'], 'rate')}")
        elif tag == "gateHHtauInf" and set(parts) == {"timeCourse", "steadyState"}:
            gate.lines.append(f"inf = {self._rate_text(parts['steadyState'], 'variable')}")
            gate.lines.append(f"tau = {self._rate_text(parts['timeCourse'], 'time')}")
        else:
            raise self.src.error(el, f"gate {gid}: <{tag}> with {', '.join(sorted(parts)) or 'nothing'} is not "
                                     f"supported by hhc import (gateHHrates with forwardRate/reverseRate, or "
                                     f"gateHHtauInf with timeCourse/steadyState)")
        return gate

    # ---------------------------------------------------------------------------------------
    def channels(self):
        out = {}
        for el in self._children(self.root):
            tag = _strip(el.tag)
            if tag == "ionChannel" and el.get("type", "ionChannelHH") in ("ionChannelHH",):
                tag = "ionChannelHH"
            if tag == "ionChannelKS" or (tag == "ionChannel" and el.get("type") == "ionChannelKS"):
                raise self.src.error(el, f"channel {el.get('id')!r}: kinetic schemes (ionChannelKS) are not "
                                         f"supported by hhc")
            if tag in ("ionChannel", "ionChannelPassive") and tag != "ionChannelHH":
                if tag == "ionChannelPassive":
                    out[el.get("id")] = (el, [])
                    continue
                raise self.src.error(el, f"channel {el.get('id')!r} of type {el.get('type')!r} is not supported")
            if tag != "ionChannelHH":
                continue
            gates = []
            for g in self._children(el):
                gtag = _strip(g.tag)
                if gtag in ("notes", "annotation"):
                    continue
                if gtag.startswith("gate"):
                    gates.append(self._gate(g))
                else:
                    raise self.src.error(g, f"<{gtag}> in channel {el.get('id')!r} is not supported by hhc import")
            out[el.get("id")] = (el, gates)
        return out

    def cells(self):
        return [el for el in self._children(self.root) if _strip(el.tag) == "cell"]

    def to_chan(self) -> str:
        channels = self.channels()
        cells = self.cells()
        if not channels and not cells:
            raise HHCError(f"{self.path}: no ionChannelHH channels or cells to import")
        unsupported = {"cell2CaPools", "izhikevichCell", "izhikevich2007Cell", "adExIaFCell", "iafCell",
                       "ionChannelKS", "decayingPoolConcentrationModel", "fixedFactorConcentrationModel"}
        for el in self._children(self.root):
            if _strip(el.tag) in unsupported:
                raise self.src.error(el, f"<{_strip(el.tag)}> is not supported by hhc import")
        uses = {}
        self.leak_channels, self.channel_uses = set(), set()
        cell_blocks = []
        for cell in cells:
            cell_blocks.append(self._cell(cell, channels, uses))
        out = [f"# Imported by `hhc import` from {Path(self.path).name}.", ""]
        for cid, (el, gates) in channels.items():
            if cid in self.leak_channels and cid not in self.channel_uses:
                continue               # only the cell's leak: written in the cell
            name = _ident(cid)
            species = el.get("species")
            gbar, erev = uses.get(cid, (None, None))
            out.append(f"channel {name} {{")
            if species and re.fullmatch(r"[A-Za-z]\w*", species):
                out.append(f"    ion {species}")
            if gbar is None:
                out.append("    gbar = 1 mS/cm2       # NeuroML puts conductances on the cell; set it where used")
            else:
                out.append(f"    gbar = {gbar}")
            if erev is None:
                default = {"na": "50 mV", "k": "-77 mV", "ca": "80 mV"}.get(species or "", "0 mV")
                out.append(f"    E = {default}          # NeuroML puts reversal potentials on the cell; set it "
                           f"where used")
            else:
                out.append(f"    E = {erev}")
            for g in gates:
                out.append(f"    gate {g.name} ^ {g.power} {{")
                for line in g.lines:
                    out.append(f"        {line}")
                out.append("    }")
            out.append("}")
            out.append("")
        for block in cell_blocks:
            out.extend(block)
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    def _cell(self, cell, channels, uses) -> list[str]:
        name = _ident(cell.get("id"))
        morph = self._children(cell, "morphology")
        if not morph:
            raise self.src.error(cell, f"cell {name}: no inline <morphology> (hhc imports single-compartment cells)")
        segments = self._children(morph[0], "segment")
        if len(segments) != 1:
            raise self.src.error(morph[0], f"cell {name}: {len(segments)} segments; hhc imports single-compartment "
                                           f"cells only (multi-compartment morphology is not supported)")
        seg = segments[0]
        prox = self._children(seg, "proximal")
        dist = self._children(seg, "distal")
        if not prox or not dist:
            raise self.src.error(seg, "segment needs proximal and distal points")
        p = [float(prox[0].get(k)) for k in ("x", "y", "z", "diameter")]
        d = [float(dist[0].get(k)) for k in ("x", "y", "z", "diameter")]
        length = math.dist(p[:3], d[:3])
        if length == 0:
            area = math.pi * d[3] ** 2                      # a sphere
        else:
            area = math.pi * (p[3] + d[3]) / 2 * length     # a cylinder's side (NEURON's area)
        bio = self._children(cell, "biophysicalProperties")
        if not bio:
            raise self.src.error(cell, f"cell {name}: no inline <biophysicalProperties>")
        mp = self._children(bio[0], "membraneProperties")
        if not mp:
            raise self.src.error(bio[0], f"cell {name}: no <membraneProperties>")
        lines = [f"cell {name} {{", f"    area = {fmt(area)} um2"]
        used, leak = [], None
        cap, v0, thresh = None, None, None
        for el in self._children(mp[0]):
            tag = _strip(el.tag)
            if tag == "channelDensity":
                if el.get("segmentGroup", "all") not in ("all", "soma_group") or el.get("segment"):
                    pass
                cid = el.get("ionChannel")
                if cid not in channels:
                    raise self.src.error(el, f"channelDensity {el.get('id')!r} uses ion channel {cid!r}, which is "
                                             f"not in this file (includes are not followed)")
                g = q_text(parse_quantity(el.get("condDensity"), self.src, el, "condDensity"))
                e = q_text(parse_quantity(el.get("erev"), self.src, el, "erev"))
                if not channels[cid][1] and leak is None:
                    leak = (g, e)
                    self.leak_channels.add(cid)
                    continue
                uses.setdefault(cid, (g, e))
                self.channel_uses.add(cid)
                used.append(f"{_ident(cid)}(gbar = {g}, E = {e})")
            elif tag == "specificCapacitance":
                cap = q_text(parse_quantity(el.get("value"), self.src, el, "specificCapacitance"))
            elif tag == "initMembPotential":
                v0 = q_text(parse_quantity(el.get("value"), self.src, el, "initMembPotential"))
            elif tag == "spikeThresh":
                thresh = q_text(parse_quantity(el.get("value"), self.src, el, "spikeThresh"))
            else:
                raise self.src.error(el, f"<{tag}> in cell {name} is not supported by hhc import (channelDensity, "
                                         f"specificCapacitance, initMembPotential, spikeThresh)")
        if cap is None:
            raise self.src.error(mp[0], f"cell {name}: no specificCapacitance")
        lines.insert(1, f"    C = {cap}")
        if used:
            lines.append("    channels " + ", ".join(used))
        if leak is not None:
            lines.append(f"    leak {{ g = {leak[0]}; E = {leak[1]} }}")
        lines.append("    input Iapp : current")
        lines.append("    initial {" + (f" v = {v0};" if v0 else "") + " gates = steady_state }")
        if thresh is not None:
            lines.append(f"    spike when v rises above {thresh}")
        lines.append("}")
        return lines


def _ident(name: str | None) -> str:
    name = re.sub(r"\W", "_", name or "unnamed")
    if name[0].isdigit():
        name = "_" + name
    return name


def import_text(text: str, path: str = "<string>") -> str:
    return Importer(path, text).to_chan()


def import_file(path: str | Path) -> str:
    return Importer(path).to_chan()
