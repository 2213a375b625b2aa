"""Raster by population and population rates of a mushroom-body run (examples/mushroom_body*.toml).

    python examples/plot_mushroom_body.py RUN_DIR [--out figure.png] [--kcs 300] [--bin 50]

Reads RUN_DIR's spikes.npz and meta.json (populations: global index ranges) and writes a PNG: a
raster of a sample of Kenyon cells and of the GGN, with the odour phases shaded, and each
population's rate over time (KC: spikes per cell per second and the fraction of KCs active per bin;
GGN: its rate)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hhc.backends.results import load_results
from hhc.plot import _plt


def odour_phases(meta) -> list[tuple[float, float]]:
    """(start, stop) of the protocol phases in which the PN source's rate is above its lowest."""
    rates = [p.get("rates", {}) for p in meta.get("protocol", [])]
    durations = [p["duration"] for p in meta.get("protocol", [])]
    values = [r.get("PN") for r in rates]
    out, t = [], 0.0
    low = min((v for v in values if v is not None), default=None)
    for d, v in zip(durations, values):
        if v is not None and low is not None and v > low:
            out.append((t, t + d))
        t += d
    return out


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out")
    ap.add_argument("--kcs", type=int, default=300, help="Kenyon cells shown in the raster")
    ap.add_argument("--bin", type=float, default=50.0, help="rate bin (ms)")
    args = ap.parse_args(argv)
    res = load_results(args.run)
    meta = res.meta
    pops = meta["populations"]
    duration = float(meta["duration"])
    i, t = np.asarray(res.spike_i), np.asarray(res.spike_t)
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1, 1.4]})
    shade = odour_phases(meta) or _odour_from_experiment(meta)
    for ax in axes:
        for a, b in shade:
            ax.axvspan(a, b, color="tab:orange", alpha=0.12, lw=0)
    kc, ggn = pops["KC"], pops.get("GGN")
    show = min(args.kcs, kc["size"])
    chosen = np.linspace(0, kc["size"] - 1, show).astype(int)
    row = np.full(kc["size"], -1)
    row[chosen] = np.arange(show)
    m = (i >= kc["offset"]) & (i < kc["offset"] + kc["size"])
    r = row[i[m] - kc["offset"]]
    axes[0].scatter(t[m][r >= 0], r[r >= 0], s=12, c="k", marker="|", lw=1.0)
    axes[0].set_ylabel(f"KC ({show} of {kc['size']:,})")
    if ggn:
        g = (i >= ggn["offset"]) & (i < ggn["offset"] + ggn["size"])
        axes[1].scatter(t[g], i[g] - ggn["offset"], s=6, c="tab:red", marker="|")
        axes[1].set_ylabel("GGN")
        axes[1].set_yticks([])
    width = args.bin * 1e-3
    edges = np.arange(0, duration + width / 2, width)
    centres = (edges[:-1] + edges[1:]) / 2
    counts = np.histogram(t[m], edges)[0]
    axes[2].plot(centres, counts / kc["size"] / width, c="k", label="KC rate (Hz per cell)")
    active = np.array([len(np.unique(i[m][(t[m] >= a) & (t[m] < b)])) for a, b in zip(edges[:-1], edges[1:])])
    ax2 = axes[2].twinx()
    ax2.plot(centres, 100 * active / kc["size"], c="tab:blue", lw=0.8, label="KCs active (%)")
    ax2.set_ylabel("KCs active per bin (%)", color="tab:blue")
    if ggn:
        ax3 = axes[2].twinx()
        ax3.spines["right"].set_position(("axes", 1.08))
        ax3.plot(centres, np.histogram(t[g], edges)[0] / ggn["size"] / width, c="tab:red", lw=0.8)
        ax3.set_ylabel("GGN rate (Hz)", color="tab:red")
    axes[2].set_ylabel("KC rate (Hz)")
    axes[2].set_xlabel("time (s)")
    axes[0].set_title(f"{Path(args.run).name}: {kc['size']:,} KCs, {duration:g} s "
                      f"(odour phases shaded; {meta.get('method')} at {meta.get('dt', 0) * 1e3:g} ms)")
    fig.tight_layout()
    out = Path(args.out) if args.out else Path(args.run) / "mushroom_body.png"
    fig.savefig(out, dpi=120)
    print(out)
    return out


def _odour_from_experiment(meta) -> list[tuple[float, float]]:
    """The odour phases from the experiment file's [[protocol]] rates (meta's protocol keeps only inputs)."""
    import tomllib
    try:
        data = tomllib.loads(Path(meta["experiment"]).read_text())
    except (OSError, KeyError, ValueError):
        return []
    phases = data.get("protocol", [])
    rates = [float(str(p.get("rates", {}).get("PN", "0")).split()[0]) for p in phases]
    durations = []
    for p in phases:
        value, unit = str(p["duration"]).split()
        durations.append(float(value) * {"s": 1.0, "ms": 1e-3}[unit])
    low = min(rates, default=0)
    out, t = [], 0.0
    for d, r in zip(durations, rates):
        if r > low:
            out.append((t, t + d))
        t += d
    return out


if __name__ == "__main__":
    main()
