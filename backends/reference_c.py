"""The reference, compiled: hhc's right-hand side as C, integrated neuron by neuron with an adaptive
Dormand–Prince 5(4) stepper at a tight tolerance.

The SciPy reference (reference.py) is exact enough but slow (about a second of wall time per neuron
per biological second); the accuracy advisor needs a reference for the whole of a 50 s run. This is
the same kind of solver in C: the derivatives (hhc.compiler.rhs.derivatives_si, shared
subexpressions pulled out by SymPy) printed with sympy.ccode, one adaptive stepper per neuron,
neurons spread over threads. It is checked, not trusted: callers run it at two tolerances (the
difference bounds its error) and against SciPy on a prefix of the run (hhc.advise does both).

Between steps v is the cubic Hermite polynomial through the step's ends (values and derivatives),
which locates each upward threshold crossing (a spike), each spike's peak (its overshoot above the
threshold) and the peaks that come close below the threshold without crossing (near misses): what
a comparison needs to recognise crossings that no integrator can decide.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy

from hhc.compiler import ir, rhs as ir_rhs, units
from hhc.compiler.errors import HHCError
from hhc.compiler.version import __version__

from .cache import cache_root, file_lock
from .results import NEAR_MISS_RECORDED, Crossings

DEFAULT_RTOL = 1e-10
MAX_STEP = 1e-3            # s: smooth stretches (depolarisation block, rest) still get looked at every ms

_TEMPLATE = r"""// hhc %(version)s: compiled reference of cell %(cell)s (from %(source)s)
// adaptive Dormand-Prince 5(4), one neuron at a time; see backends/reference_c.py
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>

static const int NS = %(n_states)d;   // states: %(state_names)s
static const double STATE_SCALE[NS] = {%(state_scales)s};   // atol = rtol x these
static const int NI = %(n_inputs)d;   // inputs: %(input_names)s

static inline double exprel(double x) {
    if (std::fabs(x) < 1e-5) return 1.0 + x / 2.0 + x * x / 6.0;
    return std::expm1(x) / x;
}

static void rhs(const double* y, const double* u, double* dy) {
%(body)s
}

struct Event { double t, value; int kind; };   // kind 0: spike (value = overshoot), 1: near miss (value = peak)

// the cubic Hermite of v on [0, h]: value and derivative at s in [0, 1]
static inline double herm(double s, double h, double y0, double f0, double y1, double f1) {
    double s2 = s * s, s3 = s2 * s;
    return (2*s3 - 3*s2 + 1) * y0 + (s3 - 2*s2 + s) * h * f0 + (-2*s3 + 3*s2) * y1 + (s3 - s2) * h * f1;
}
// the crossing of level c on [a, b] (the Hermite is monotone there and changes sign), by bisection
static double cross(double a, double b, double h, double y0, double f0, double y1, double f1, double c) {
    double ga = herm(a, h, y0, f0, y1, f1) - c;
    for (int k = 0; k < 60; ++k) {
        double m = 0.5 * (a + b), gm = herm(m, h, y0, f0, y1, f1) - c;
        if ((gm > 0) == (ga > 0)) { a = m; ga = gm; } else b = m;
    }
    return 0.5 * (a + b);
}
// interior extrema of the Hermite on (0, 1), in order: roots of its derivative (a quadratic)
static int extrema(double h, double y0, double f0, double y1, double f1, double* out) {
    double A = 6*y0 + 3*h*f0 - 6*y1 + 3*h*f1, B = -6*y0 - 4*h*f0 + 6*y1 - 2*h*f1, C = h*f0;
    double r[2];
    int nr = 0, n = 0;
    if (std::fabs(A) < 1e-300) { if (std::fabs(B) > 1e-300) r[nr++] = -C / B; }
    else {
        double disc = B*B - 4*A*C;
        if (disc > 0) { double q = std::sqrt(disc); r[nr++] = (-B - q) / (2*A); r[nr++] = (-B + q) / (2*A); }
    }
    if (nr == 2 && r[1] < r[0]) std::swap(r[0], r[1]);
    for (int k = 0; k < nr; ++k) if (r[k] > 0 && r[k] < 1) out[n++] = r[k];
    return n;
}

struct Neuron {
    std::vector<Event> events;
    long steps = 0, rejected = 0;
    int failed = 0;
    double failed_at = 0;
};

static void integrate(const double* y_init, const double* u_all, const double* durations, int n_phases,
                      double rtol, double max_step, double threshold, double near_below, Neuron& out) {
    // Dormand-Prince 5(4) coefficients (Hairer, Norsett & Wanner)
    const double c2 = 1.0/5, c3 = 3.0/10, c4 = 4.0/5, c5 = 8.0/9;
    const double a21 = 1.0/5;
    const double a31 = 3.0/40, a32 = 9.0/40;
    const double a41 = 44.0/45, a42 = -56.0/15, a43 = 32.0/9;
    const double a51 = 19372.0/6561, a52 = -25360.0/2187, a53 = 64448.0/6561, a54 = -212.0/729;
    const double a61 = 9017.0/3168, a62 = -355.0/33, a63 = 46732.0/5247, a64 = 49.0/176, a65 = -5103.0/18656;
    const double b1 = 35.0/384, b3 = 500.0/1113, b4 = 125.0/192, b5 = -2187.0/6784, b6 = 11.0/84;
    const double e1 = 71.0/57600, e3 = -71.0/16695, e4 = 71.0/1920, e5 = -17253.0/339200, e6 = 22.0/525,
                 e7 = -1.0/40;
    (void)c2; (void)c3; (void)c4; (void)c5;
    double y[NS], k1[NS], k2[NS], k3[NS], k4[NS], k5[NS], k6[NS], k7[NS], yt[NS], yn[NS], atol[NS];
    for (int i = 0; i < NS; ++i) { y[i] = y_init[i]; atol[i] = rtol * STATE_SCALE[i]; }
    double t = 0, h = 1e-6;
    bool above = y[0] > threshold;
    double peak = y[0];            // running maximum of v while above the threshold
    double t0 = 0;
    for (int p = 0; p < n_phases; ++p) {
        const double* u = u_all + p * NI;
        double t_end = t0 + durations[p];
        rhs(y, u, k1);
        h = std::min(h, max_step);
        while (t < t_end) {
            double hh = std::min(h, t_end - t);
            bool last = hh >= t_end - t;
            for (int i = 0; i < NS; ++i) yt[i] = y[i] + hh * a21 * k1[i];
            rhs(yt, u, k2);
            for (int i = 0; i < NS; ++i) yt[i] = y[i] + hh * (a31 * k1[i] + a32 * k2[i]);
            rhs(yt, u, k3);
            for (int i = 0; i < NS; ++i) yt[i] = y[i] + hh * (a41 * k1[i] + a42 * k2[i] + a43 * k3[i]);
            rhs(yt, u, k4);
            for (int i = 0; i < NS; ++i) yt[i] = y[i] + hh * (a51 * k1[i] + a52 * k2[i] + a53 * k3[i] + a54 * k4[i]);
            rhs(yt, u, k5);
            for (int i = 0; i < NS; ++i)
                yt[i] = y[i] + hh * (a61 * k1[i] + a62 * k2[i] + a63 * k3[i] + a64 * k4[i] + a65 * k5[i]);
            rhs(yt, u, k6);
            for (int i = 0; i < NS; ++i) yn[i] = y[i] + hh * (b1 * k1[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i] + b6 * k6[i]);
            rhs(yn, u, k7);
            double err = 0;
            bool finite = true;
            for (int i = 0; i < NS; ++i) {
                double e = hh * (e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i] + e7 * k7[i]);
                double sc = atol[i] + rtol * std::max(std::fabs(y[i]), std::fabs(yn[i]));
                double r = e / sc;
                err += r * r;
                if (!std::isfinite(yn[i]) || !std::isfinite(k7[i])) finite = false;
            }
            err = finite ? std::sqrt(err / NS) : 1e300;
            if (err > 1.0) {
                out.rejected++;
                h = hh * std::max(0.2, 0.9 * std::pow(err, -0.2));
                if (h < 1e-14) { out.failed = 1; out.failed_at = t; return; }
                continue;
            }
            // accepted: look at v on [t, t + hh], split where the Hermite turns (it is monotone between)
            double v0 = y[0], f0 = k1[0], v1 = yn[0], f1 = k7[0];
            double turns[2];
            int nt = extrema(hh, v0, f0, v1, f1, turns);
            double bounds[4] = {0.0, 0.0, 0.0, 0.0};
            int nb = 0;
            bounds[nb++] = 0.0;
            for (int k = 0; k < nt; ++k) bounds[nb++] = turns[k];
            bounds[nb++] = 1.0;
            for (int k = 0; k + 1 < nb; ++k) {
                double sa = bounds[k], sb = bounds[k + 1];
                double va = herm(sa, hh, v0, f0, v1, f1), vb = herm(sb, hh, v0, f0, v1, f1);
                if (!above && va <= threshold && vb > threshold) {
                    double s = cross(sa, sb, hh, v0, f0, v1, f1, threshold);
                    above = true; peak = threshold;
                    out.events.push_back({t + s * hh, 0.0, 0});
                } else if (above && va > threshold && vb <= threshold) {
                    above = false;
                    for (auto it = out.events.rbegin(); it != out.events.rend(); ++it)
                        if (it->kind == 0) { it->value = peak - threshold; break; }
                }
                if (k + 1 < nb - 1 && vb >= va) {        // bounds[k+1] is an interior maximum
                    if (above) peak = std::max(peak, vb);
                    else if (vb > threshold - near_below) out.events.push_back({t + sb * hh, vb, 1});
                }
            }
            if (above) peak = std::max(peak, v1);
            for (int i = 0; i < NS; ++i) { y[i] = yn[i]; k1[i] = k7[i]; }
            t = last ? t_end : t + hh;
            out.steps++;
            double grow = err > 0 ? 0.9 * std::pow(err, -0.2) : 5.0;
            h = std::min(max_step, hh * std::min(5.0, std::max(0.2, grow)));
            if (last) break;
        }
        t0 = t_end;
        t = t_end;
    }
    if (above)
        for (auto it = out.events.rbegin(); it != out.events.rend(); ++it)
            if (it->kind == 0) { it->value = peak - threshold; break; }
}

int main(int argc, char** argv) {
    if (argc != 3) { std::fprintf(stderr, "usage: %%s input.bin output.bin\n", argv[0]); return 2; }
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) { std::perror(argv[1]); return 2; }
    double head[6];
    if (std::fread(head, sizeof(double), 6, f) != 6) return 3;
    int n = (int)head[0], n_phases = (int)head[1];
    double rtol = head[2], max_step = head[3], threshold = head[4], near_below = head[5];
    std::vector<double> durations(n_phases), y0((size_t)n * NS), u((size_t)n * n_phases * NI + 1);
    if (std::fread(durations.data(), sizeof(double), n_phases, f) != (size_t)n_phases) return 3;
    if (std::fread(y0.data(), sizeof(double), y0.size(), f) != y0.size()) return 3;
    size_t nu = (size_t)n * n_phases * NI;
    if (nu && std::fread(u.data(), sizeof(double), nu, f) != nu) return 3;
    std::fclose(f);
    std::vector<Neuron> neurons(n);
    #pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < n; ++k)
        integrate(&y0[(size_t)k * NS], &u[(size_t)k * n_phases * NI], durations.data(), n_phases, rtol, max_step,
                  threshold, near_below, neurons[k]);
    FILE* o = std::fopen(argv[2], "wb");
    if (!o) { std::perror(argv[2]); return 2; }
    for (int k = 0; k < n; ++k) {
        const Neuron& nr = neurons[k];
        double rec[4] = {(double)k, (double)nr.events.size(), (double)nr.steps, (double)nr.rejected};
        double fail[2] = {(double)nr.failed, nr.failed_at};
        std::fwrite(rec, sizeof(double), 4, o);
        std::fwrite(fail, sizeof(double), 2, o);
        for (const Event& e : nr.events) {
            double ev[3] = {e.t, e.value, (double)e.kind};
            std::fwrite(ev, sizeof(double), 3, o);
        }
    }
    std::fclose(o);
    return 0;
}
"""


def c_source(cell: ir.Cell) -> str:
    """The C program of a cell: its right-hand side in SI (states y[k], inputs u[k]) and the stepper."""
    if cell.threshold is None:
        raise HHCError(f"cell {cell.name} has no spike threshold: the compiled reference locates spikes")
    derivs = ir_rhs.derivatives_si(cell)
    states = list(cell.states)
    inputs = [i.name for i in cell.inputs]
    table = {sympy.Symbol(s): sympy.Symbol(f"y_{k}") for k, s in enumerate(states)}
    table.update({sympy.Symbol(s): sympy.Symbol(f"u_{k}") for k, s in enumerate(inputs)})
    exprs = [derivs[s].xreplace(table) for s in states]
    temps, reduced = ir_rhs.shared(exprs, prefix="c")
    printer = dict(user_functions={"exprel": "exprel"})
    lines = [f"    const double y_{k} = y[{k}];" for k in range(len(states))]
    lines += [f"    const double u_{k} = u[{k}];" for k in range(len(inputs))]
    lines += [f"    const double {sym} = {sympy.ccode(expr, **printer)};" for sym, expr in temps]
    lines += [f"    dy[{k}] = {sympy.ccode(expr, **printer)};  // d{s}/dt" for k, (s, expr) in
              enumerate(zip(states, reduced))]
    return _TEMPLATE % {"version": __version__, "cell": cell.name,
                        "source": ", ".join(Path(s).name for s in cell.sources) or "(no file)",
                        "n_states": len(states), "n_inputs": len(inputs),
                        "state_names": ", ".join(states), "input_names": ", ".join(inputs) or "none",
                        "body": "\n".join(lines),
                        "state_scales": ", ".join(repr(x) for x in ir_rhs.state_scales(cell))}


def unavailable_reason() -> str | None:
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        return "no C++ compiler (g++) to build the compiled reference"
    return None


def build(cell: ir.Cell) -> Path:
    """The compiled reference program of a cell, built once per machine (cached by its source)."""
    reason = unavailable_reason()
    if reason:
        raise HHCError(reason)
    source = c_source(cell)
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    folder = cache_root() / "reference_c" / key
    binary = folder / "reference"
    with file_lock(folder.with_suffix(".lock")):
        if binary.exists():
            return binary
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reference.cpp").write_text(source)
        cxx = shutil.which(os.environ.get("CXX", "g++"))
        # no -ffast-math: the reference keeps IEEE arithmetic (expm1, exact comparisons)
        cmd = [cxx, "-O2", "-fopenmp", "-std=c++11", "reference.cpp", "-o", "reference.tmp"]
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise HHCError(f"building the compiled reference of {cell.name} failed:\n{done.stderr[-2000:]}")
        os.replace(folder / "reference.tmp", binary)
    return binary


@dataclass
class CompiledSolution:
    """Spikes and crossings of some neurons, in the order of `neurons` (original indices)."""
    neurons: np.ndarray
    trains: list            # per neuron: spike times (s)
    overshoots: list        # per neuron: each spike's peak - threshold (V)
    near: list              # per neuron: (times, peaks) of near misses
    threshold: float
    rtol: float
    steps: int
    wall_s: float

    def spikes(self):
        """(spike_i, spike_t, Crossings) as the results format holds them."""
        i = np.concatenate([np.full(len(t), n, np.int64) for n, t in zip(self.neurons, self.trains)] or
                           [np.zeros(0, np.int64)])
        t = np.concatenate(self.trains or [np.zeros(0)])
        over = np.concatenate(self.overshoots or [np.zeros(0)])
        near_i = np.concatenate([np.full(len(nt), n, np.int64) for n, (nt, _) in zip(self.neurons, self.near)] or
                                [np.zeros(0, np.int64)])
        near_t = np.concatenate([nt for nt, _ in self.near] or [np.zeros(0)])
        near_p = np.concatenate([npk for _, npk in self.near] or [np.zeros(0)])
        return i, t, Crossings(self.threshold, over, near_i, near_t, near_p)


def solve(cell: ir.Cell, y0: np.ndarray, durations, inputs: np.ndarray, neurons=None, *, rtol=DEFAULT_RTOL,
          max_step=MAX_STEP, threads=None) -> CompiledSolution:
    """Integrate neurons with initial states y0 (n, n_states, in SI, the order of cell.states) through
    phases of the given durations (s) with inputs (n, n_phases, n_inputs) in SI."""
    binary = build(cell)
    y0 = np.ascontiguousarray(y0, dtype=np.float64)
    n = len(y0)
    durations = np.asarray(durations, dtype=np.float64)
    inputs = np.ascontiguousarray(inputs, dtype=np.float64).reshape(n, len(durations), len(cell.inputs))
    threshold = float(units.to_si(cell.threshold))
    neurons = np.arange(n) if neurons is None else np.asarray(neurons, dtype=np.int64)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads or os.cpu_count() or 1))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hhc-refc-") as tmp:
        src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(src, "wb") as f:
            np.array([n, len(durations), rtol, max_step, threshold, NEAR_MISS_RECORDED], np.float64).tofile(f)
            durations.tofile(f)
            y0.tofile(f)
            inputs.tofile(f)
        done = subprocess.run([str(binary), str(src), str(dst)], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise HHCError(f"the compiled reference failed (exit {done.returncode}): {done.stderr[-1000:]}")
        raw = np.fromfile(dst, dtype=np.float64)
    wall = time.perf_counter() - started
    trains, overshoots, near, steps, pos = [], [], [], 0, 0
    for k in range(n):
        _, n_events, n_steps, _ = raw[pos:pos + 4]
        failed, failed_at = raw[pos + 4:pos + 6]
        pos += 6
        ev = raw[pos:pos + 3 * int(n_events)].reshape(-1, 3)
        pos += 3 * int(n_events)
        if failed:
            raise HHCError(f"the compiled reference lost neuron {int(neurons[k])} at t = {failed_at:.6g} s "
                           f"(the step size fell below 1e-14 s: the solution blows up)")
        spikes = ev[ev[:, 2] == 0]
        misses = ev[ev[:, 2] == 1]
        trains.append(spikes[:, 0].copy())
        overshoots.append(spikes[:, 1].copy())
        near.append((misses[:, 0].copy(), misses[:, 1].copy()))
        steps += int(n_steps)
    return CompiledSolution(neurons, trains, overshoots, near, threshold, rtol, steps, wall)
