"""`hhc reference`: a high-precision reference for a sample of an experiment's neurons."""
from __future__ import annotations

import click

from hhc.backends.reference import DEFAULT_METHOD, DEFAULT_RTOL, METHODS
from hhc.reference import reference_run


@click.command("reference")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--sample", "-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of neurons, spread evenly over the population.")
@click.option("--neurons", help='Explicit neuron indices instead of --sample, e.g. "0,5,17".')
@click.option("--out", type=click.Path(file_okay=False), help="Result directory (default: runs/<name>-reference-<time>).")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD,
              show_default=True, help="scipy.integrate.solve_ivp method.")
@click.option("--rtol", type=float, default=DEFAULT_RTOL, show_default=True,
              help="Relative tolerance; absolute tolerance is rtol x 100 mV for v and rtol for gates.")
@click.option("--duration", help='Cut the protocol to this much biological time, e.g. "1 s".')
@click.option("--variables", default="v", show_default=True,
              help="States to record as traces (comma-separated), at the experiment's trace interval and windows.")
def command(experiment, sample, neurons, out, method, rtol, duration, variables):
    """Integrate K neurons of EXPERIMENT with SciPy at a tight tolerance; write an hhc result."""
    chosen = [int(x) for x in neurons.split(",")] if neurons else None
    out_dir = reference_run(experiment, sample=sample, neurons=chosen, out=out, method=method, rtol=rtol,
                            duration=duration, variables=[v.strip() for v in variables.split(",") if v.strip()])
    click.echo(str(out_dir))
