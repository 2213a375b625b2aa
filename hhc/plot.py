"""Figures people look at first: spike rasters, traces and firing-rate histograms (matplotlib, PNG),
overlaid when several runs are given; and the figures of a `hhc compare` report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hhc.backends.results import Results, load_results

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
MARKERS = ["|", "x", "+", "1", "2", "3"]
UNITS = {"v": ("mV", 1e3)}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _unit(var):
    if var in UNITS:
        return UNITS[var]
    if var.startswith("I"):
        return "pA", 1e12
    return "", 1.0


def _label(r: Results, k: int) -> str:
    return f"{k + 1}: {r.label(str(r.path))}"


def raster(ax, runs: list[Results], neurons=None, t_max=None, labels=None, max_neurons=60):
    """Spikes of up to max_neurons neurons (the given ones, or spread over the population)."""
    if neurons is None:
        allowed = runs[0].neurons()
        if len(allowed) > max_neurons:
            allowed = allowed[np.unique(np.round(np.linspace(0, len(allowed) - 1, max_neurons)).astype(int))]
        neurons = allowed
    neurons = np.asarray(neurons)[:max_neurons]
    row = {int(n): k for k, n in enumerate(neurons)}
    for k, r in enumerate(runs):
        keep = np.isin(r.spike_i, neurons)
        t = r.spike_t[keep]
        y = np.array([row[int(i)] for i in r.spike_i[keep]], dtype=float)
        if t_max is not None:
            y, t = y[t <= t_max], t[t <= t_max]
        offset = (k - (len(runs) - 1) / 2) * 0.25 if len(runs) > 1 else 0.0
        ax.scatter(t * 1e3, y + offset, s=14 if len(runs) > 1 else 6, marker=MARKERS[k % len(MARKERS)],
                   color=COLORS[k % len(COLORS)], linewidths=1,
                   label=labels[k] if labels else None)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    if len(neurons) <= 20:
        ax.set_yticks(range(len(neurons)))
        ax.set_yticklabels([str(n) for n in neurons])
    else:
        ticks = np.linspace(0, len(neurons) - 1, 6).astype(int)
        ax.set_yticks(ticks)
        ax.set_yticklabels([str(neurons[t]) for t in ticks])
    ax.set_ylim(-0.7, len(neurons) - 0.3)
    if labels:
        ax.legend(loc="upper right", fontsize=8, markerscale=1.5)


def trace_windows(t: np.ndarray) -> list[slice]:
    """The recorded time axis cut where samples stop (a gap of more than 1.5 sampling intervals):
    windows are drawn apart, never joined by a line across the gap."""
    if len(t) < 3:
        return [slice(0, len(t))] if len(t) else []
    step = np.median(np.diff(t))
    cuts = np.flatnonzero(np.diff(t) > 1.5 * step) + 1
    edges = [0] + list(cuts) + [len(t)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def raster_figure(runs: list[Results], labels, max_neurons=60):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    raster(ax, runs, labels=labels, max_neurons=max_neurons)
    total = len(runs[0].neurons())
    shown = min(total, max_neurons)
    ax.set_title("spike raster" + (" (runs overlaid, offset vertically)" if len(runs) > 1 else "") +
                 (f": {shown:,} of {total:,} neurons" if shown < total else f": all {total:,} neurons") +
                 f", 0–{max(r.duration() for r in runs) * 1e3:g} ms")
    fig.tight_layout()
    return fig


def trace_figure(runs: list[Results], labels, trace_neurons=4):
    """Rows: the first trace group's variables; columns: its recording windows (a broken time axis)."""
    plt = _plt()
    variables = []
    for r in runs:
        for g in r.traces[:1]:
            variables += [v for v in g.variables if v not in variables]
    if not variables:
        return None
    first = next(r.traces[0] for r in runs if r.traces)
    windows = trace_windows(first.t) or [slice(0, 0)]
    spans = [(first.t[w][0], first.t[w][-1]) if w.stop > w.start else (0.0, 0.0) for w in windows]
    widths = [max(b - a, 1e-9) for a, b in spans]
    fig, axes = plt.subplots(len(variables), len(windows), figsize=(11, 3.2 * len(variables)), sharey="row",
                             squeeze=False, gridspec_kw={"width_ratios": widths if len(windows) > 1 else None})
    for row, var in enumerate(variables):
        unit, scale = _unit(var)
        for col, (lo, hi) in enumerate(spans):
            ax = axes[row, col]
            for k, r in enumerate(runs):
                if not r.traces or var not in r.traces[0].variables:
                    continue
                g = r.traces[0]
                for piece in trace_windows(g.t):
                    t = g.t[piece]
                    if not len(t) or t[-1] < lo - 1e-12 or t[0] > hi + 1e-12:
                        continue
                    for j, n in enumerate(g.neurons[:trace_neurons]):
                        ax.plot(t * 1e3, g.variables[var][piece, j] * scale, color=COLORS[k % len(COLORS)],
                                lw=0.9, alpha=0.9 if k == 0 else 0.7, ls="-" if k == 0 else "--",
                                label=(f"{labels[k]}, neuron {n}" if (j == 0 or len(runs) == 1) and col == 0
                                       else None))
            ax.set_xlim(lo * 1e3, hi * 1e3 if hi > lo else lo * 1e3 + 1)
            if col == 0:
                ax.set_ylabel(f"{var} ({unit})" if unit else var)
                ax.legend(loc="upper right", fontsize=7)
            else:
                ax.tick_params(labelleft=False)
            if row == len(variables) - 1:
                ax.set_xlabel("time (ms)")
            if row == 0 and len(windows) > 1:
                ax.set_title(f"window {col + 1}: {lo * 1e3:g}–{hi * 1e3:g} ms", fontsize=9)
    fig.suptitle(f"traces (up to {trace_neurons} neurons per run)" +
                 (f"; {len(windows)} recording windows, drawn apart" if len(windows) > 1 else ""))
    fig.tight_layout()
    return fig


def rate_figure(runs: list[Results], labels):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rates = []
    for r in runs:
        n = r.neurons()
        counts = np.bincount(r.spike_i, minlength=int(n.max()) + 1 if len(n) else 0)[n] if len(n) else np.zeros(0)
        rates.append(counts / max(r.duration(), 1e-12))
    top = max((x.max() for x in rates if len(x)), default=1.0)
    bins = np.linspace(0, max(top, 1e-9) * 1.05 + 1e-9, 30)
    for k, x in enumerate(rates):
        ax.hist(x, bins=bins, histtype="step", lw=max(3.0 - 0.8 * k, 1.0), ls=["-", "--", ":", "-."][k % 4],
                color=COLORS[k % len(COLORS)], label=labels[k])
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("neurons")
    ax.set_title("firing-rate distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_runs(paths, out, max_neurons=60, trace_neurons=4) -> list[Path]:
    """raster.png, traces.png (first trace group), rates.png in out; runs overlaid."""
    plt = _plt()
    runs = [load_results(p) for p in paths]
    labels = [_label(r, k) for k, r in enumerate(runs)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in (("raster.png", raster_figure(runs, labels, max_neurons)),
                      ("traces.png", trace_figure(runs, labels, trace_neurons)),
                      ("rates.png", rate_figure(runs, labels))):
        if fig is None:
            continue
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)
    return written


def pair_figures(p, ra: Results, rb: Results, out: Path, stem: str) -> list[tuple[str, str]]:
    """Raster overlay, trace overlay and spike-time-difference histogram of one compared pair."""
    plt = _plt()
    images = []
    failing = [c.neuron for c in p.failing]
    others = [int(n) for n in p.neurons if int(n) not in set(failing)]
    chosen = (failing[:20] + others)[:40]
    labels = [f"A: {p.label_a}", f"B: {p.label_b}"]
    if chosen:
        fig, ax = plt.subplots(figsize=(11, 5.5))
        raster(ax, [ra, rb], neurons=chosen, t_max=p.t_end, labels=labels, max_neurons=40)
        for k, n in enumerate(chosen):
            if n in failing:
                ax.axhspan(k - 0.45, k + 0.45, color="red", alpha=0.12, lw=0)
        ax.set_title("raster overlay" + (" (disagreeing neurons shaded, listed first)" if failing else ""))
        fig.tight_layout()
        name = f"{stem}_raster.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        images.append(("raster overlay", name))

    traces = [tc for tc in p.traces if tc.t is not None]
    if traces:
        tc = next((t for t in traces if t.variable == "v"), traces[0])
        unit, scale = _unit(tc.variable)
        order = list(np.argsort(-np.nan_to_num(tc.sub_rms, nan=np.inf)))[:3]
        fig, axes = plt.subplots(len(order), 1, figsize=(11, 2.8 * len(order)), sharex=True, squeeze=False)
        for ax, j in zip(axes[:, 0], order):
            ax.plot(tc.t * 1e3, tc.a[:, j] * scale, color=COLORS[0], lw=1.0, label=labels[0])
            ax.plot(tc.t * 1e3, tc.b[:, j] * scale, color=COLORS[1], lw=1.0, ls="--", label=labels[1])
            ax.set_ylabel(f"{tc.variable} ({unit})" if unit else tc.variable)
            ax.set_title(f"neuron {tc.neurons[j]}: RMS difference {tc.rms[j] * scale:.3g} {unit}, away from spikes "
                         f"{tc.sub_rms[j] * scale:.3g} {unit}", fontsize=9)
        axes[0, 0].legend(loc="upper right", fontsize=8)
        axes[-1, 0].set_xlabel("time (ms)")
        fig.tight_layout()
        name = f"{stem}_traces.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        images.append(("trace overlay (largest differences)", name))

    regular, marginal = p.all_diffs(False) * 1e3, p.all_diffs(True) * 1e3
    fig, ax = plt.subplots(figsize=(8, 4.5))
    both = np.concatenate([regular, marginal])
    if len(both):
        lim = max(np.max(np.abs(both)), 1e-6)
        bins = np.linspace(-lim, lim, 41)
        if len(regular):
            ax.hist(regular, bins=bins, color=COLORS[0], alpha=0.7, label=f"regular ({len(regular):,} spikes)")
        if len(marginal):
            ax.hist(marginal, bins=bins, color=COLORS[3], alpha=0.6, label=f"marginal ({len(marginal):,} spikes)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no matched spikes", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("spike time difference B - A (ms)")
    ax.set_ylabel("matched spikes")
    ax.set_title(f"spike-time differences (matching window {p.tol.window * 1e3:g} ms)")
    fig.tight_layout()
    name = f"{stem}_spike_dt.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    images.append(("spike-time difference histogram", name))
    if getattr(p, "network", None) is not None and p.network.populations:
        fig = population_rate_figure(p)
        name = f"{stem}_population_rates.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        images.append(("population rates over time", name))
    return images


def population_rate_figure(p, max_populations=8):
    """A network pair: each population's rate over time (Hz per neuron, in the statistics' bins) in A
    and B, the first divergence of its spikes marked."""
    plt = _plt()
    pops = p.network.populations[:max_populations]
    fig, axes = plt.subplots(len(pops), 1, figsize=(11, 2.4 * len(pops) + 0.6), sharex=True, squeeze=False)
    for ax, pc in zip(axes[:, 0], pops):
        for k, (st, label) in enumerate(((pc.stats_a, f"A: {p.label_a}"), (pc.stats_b, f"B: {p.label_b}"))):
            ax.step(st.rate_t * 1e3, st.rate, where="mid", color=COLORS[k], lw=1.0, ls="-" if k == 0 else "--",
                    label=f"{label} (mean {st.mean_rate:.3g} Hz, chi {st.synchrony:.2f})")
        if pc.diverged_at is not None:
            ax.axvline(pc.diverged_at * 1e3, color="red", lw=1, ls=":", label=f"diverged at {pc.diverged_at * 1e3:.4g} ms")
        ax.set_ylabel(f"{pc.name} (Hz)")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (ms)")
    first = p.network.first_divergence
    judged = ("judged spike-by-spike" if p.network.judged == "spike-by-spike" else "judged by population statistics")
    where = (f"; spikes diverged at t = {first.diverged_at * 1e3:.4g} ms in {first.name}" if first is not None else "")
    fig.suptitle(f"population rates ({p.tol.stats_bin * 1e3:g} ms bins): {judged}{where}", fontsize=10)
    fig.tight_layout()
    return fig
