"""`hhc advise`: the cheapest method x dt that reproduces the reference on a sample."""
from __future__ import annotations

import sys

import click

from hhc.advise import (DEFAULT_DTS_MS, DEFAULT_METHODS, DEFAULT_SAMPLE, AdviseTolerance, advise, format_table,
                        recommendation_text)
from hhc.api import prepare
from hhc.compiler.experiment import parse_duration


@click.command("advise")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--sample", "-k", type=click.IntRange(min=1), default=DEFAULT_SAMPLE, show_default=True,
              help="Neurons in the sample (spread evenly over the population).")
@click.option("--duration", default="1 s", show_default=True,
              help='Cut the protocol to this much biological time ("full" for all of it).')
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True, help="Methods to try.")
@click.option("--dts", default=",".join(f"{d:g}" for d in DEFAULT_DTS_MS), show_default=True,
              help="Time steps to try (ms).")
@click.option("--tolerance", "first_spike", type=float, default=0.1, show_default=True,
              help="Allowed first-spike error (ms); spike counts must be identical (see --count).")
@click.option("--count", type=click.IntRange(min=0), default=0, show_default=True,
              help="Allowed spike-count difference per sampled neuron.")
@click.option("--spike-time", type=float, default=AdviseTolerance().spike_time * 1e3, show_default=True,
              help="Require every matched spike within this error (ms); 0 for no bound.")
@click.option("--backend", help="Backend to advise for (default: the experiment's).")
@click.option("--device", help="Device (default for brian2: runtime).")
@click.option("--out", type=click.Path(file_okay=False), default="advise-report", show_default=True,
              help="Folder for advise.md, advise.json and the reference result.")
@click.option("--no-cost-probe", is_flag=True,
              help="Do not measure the cost per step (use RHS evaluations per step instead).")
def command(experiment, sample, duration, methods, dts, first_spike, count, spike_time, backend, device, out,
            no_cost_probe):
    """Try method x dt on a sample of EXPERIMENT against the reference; recommend the cheapest that fits."""
    full, cell, _ = prepare(experiment, choose_auto=False)
    trials, best, info = advise(
        full, cell, sample=sample, duration=None if duration == "full" else parse_duration(duration),
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        dts=tuple(float(d) * 1e-3 for d in dts.split(",") if d.strip()), backend=backend, device=device,
        tolerance=AdviseTolerance(count=count, first_spike=first_spike * 1e-3,
                                  spike_time=spike_time * 1e-3 if spike_time else None), out=out,
        measure_cost=not no_cost_probe, say=lambda m: click.echo(m, err=True))
    click.echo(format_table(trials, best, info))
    click.echo("")
    click.echo(recommendation_text(best, info))
    click.echo(f"report: {out}/advise.md")
    if best is None:
        sys.exit(1)
