"""`hhc plot`: raster, traces and firing-rate histograms of one or more runs (overlaid)."""
from __future__ import annotations

import click

from hhc.plot import plot_runs


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="plots", show_default=True,
              help="Folder for raster.png, traces.png and rates.png.")
@click.option("--neurons", type=click.IntRange(min=1), default=60, show_default=True,
              help="At most this many neurons in the raster (spread over the population).")
@click.option("--trace-neurons", type=click.IntRange(min=1), default=4, show_default=True,
              help="At most this many traced neurons per run.")
def command(runs, out, neurons, trace_neurons):
    """Draw RUNS as PNG figures; several runs are overlaid."""
    for path in plot_runs(list(runs), out, max_neurons=neurons, trace_neurons=trace_neurons):
        click.echo(str(path))
