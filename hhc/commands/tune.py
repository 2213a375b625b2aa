"""`hhc tune`: measure short runs at several thread counts and recommend (or write) the best."""
from __future__ import annotations

import click

from hhc.compiler.errors import HHCError
from hhc.tune import tune, write_threads


@click.command("tune")
@click.argument("experiment", type=click.Path(dir_okay=False, exists=True))
@click.option("--threads", "counts", help="Thread counts to try, e.g. 1,2,4 (default: 1, powers of two, all cores).")
@click.option("--duration", default="200 ms", show_default=True, help="Biological time of each trial run.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True,
              help="Runs per thread count (the best is kept: the machine is shared).")
@click.option("--write", is_flag=True, help="Write the recommended count into the experiment's [backend] threads.")
def command(experiment, counts, duration, repeats, write):
    """Time EXPERIMENT at several thread counts and recommend the fastest."""
    try:
        threads = [int(c) for c in counts.split(",") if c.strip()] if counts else None
    except ValueError:
        raise HHCError(f"--threads must be a list of whole numbers like 1,2,4, got {counts!r}") from None
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    results, best, info = tune(experiment, threads=threads, duration=duration, repeats=repeats, say=say)
    base = results[0]
    click.echo(f"{info['n_neurons']:,} neurons, {info['method']} at dt {info['dt'] * 1e3:g} ms, "
               f"{info['duration']:g} s per trial on {info['backend']}/{info['device']} ({info['cores']} cores):")
    click.echo(f"{'threads':>8}  {'wall (s)':>9}  {'ns/neuron-step':>15}  {'speed-up':>8}")
    for m in results:
        mark = "  <= recommended" if m.threads == best else ""
        click.echo(f"{m.threads:>8}  {m.wall_s:>9.3f}  {m.ns_per_neuron_step:>15.1f}  "
                   f"{base.wall_s / m.wall_s:>7.2f}x{mark}")
    click.echo(f"recommended: threads = {best}")
    if write:
        write_threads(experiment, best)
        click.echo(f"wrote threads = {best} into {experiment}")
