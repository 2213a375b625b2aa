"""`hhc compare`: do two or more runs give the same science?"""
from __future__ import annotations

import sys

import click

from hhc.compare import (NETWORK_HEADER, Tolerances, compare_runs, failure_lines, format_columns, format_table,
                         network_rows, pair_table)

_D = Tolerances()


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--report", type=click.Path(file_okay=False), default="compare-report", show_default=True,
              help="Folder for summary.md, summary.json and the PNG plots.")
@click.option("--no-plots", is_flag=True, help="Write the Markdown/JSON summary only.")
@click.option("--count", type=int, default=_D.count, show_default=True, help="Allowed spike count difference per neuron.")
@click.option("--first-spike", type=float, default=_D.first_spike * 1e3, show_default=True,
              help="Allowed first-spike time difference (ms).")
@click.option("--spike-time", type=float, default=_D.spike_time * 1e3, show_default=True,
              help="Allowed difference of matched spike times, per spike (ms).")
@click.option("--window", type=float, default=_D.window * 1e3, show_default=True,
              help="Matching window for spikes (ms).")
@click.option("--marginal-count", type=int, default=_D.marginal_count, show_default=True,
              help="Allowed spike count difference for marginal (near-rheobase) neurons.")
@click.option("--marginal-first-spike", type=float, default=_D.marginal_first_spike * 1e3, show_default=True,
              help="Allowed first-spike difference for marginal neurons (ms).")
@click.option("--marginal-spike-time", type=float, default=_D.marginal_spike_time * 1e3, show_default=True,
              help="Allowed matched spike-time difference for marginal neurons (ms).")
@click.option("--marginal-max-spikes", type=int, default=_D.marginal_max_spikes, show_default=True,
              help="A neuron firing at most this many spikes in a run is marginal.")
@click.option("--marginal-isi", type=float, default=_D.marginal_isi * 1e3, show_default=True,
              help="A neuron whose median inter-spike interval exceeds this (ms) in a run is marginal.")
@click.option("--marginal-latency", type=float, default=_D.marginal_latency * 1e3, show_default=True,
              help="A neuron whose first spike comes this long (ms) after its phase starts is marginal.")
@click.option("--trace-rms", type=float, default=_D.trace_rms_v * 1e3, show_default=True,
              help="Allowed subthreshold RMS difference of v per neuron (mV).")
@click.option("--trace-spike-mask", type=float, default=_D.trace_spike_mask * 1e3, show_default=True,
              help="Trace samples this close (ms) to a spike of either run are left out of the judged RMS.")
@click.option("--trace-rms-gates", type=float, default=_D.trace_rms_other, show_default=True,
              help="Allowed RMS difference of dimensionless states per neuron.")
@click.option("--trace-rms-concentrations", type=float, default=_D.trace_rms_concentration, show_default=True,
              help="Allowed RMS difference of ion concentrations (cai ...) per neuron, relative to their RMS.")
@click.option("--stats-bin", type=float, default=_D.stats_bin * 1e3, show_default=True,
              help="Networks: spike-count bin of the correlations, synchrony and population rate (ms).")
@click.option("--stats-pairs", type=int, default=_D.stats_pairs, show_default=True,
              help="Networks: pairs of neurons per population for the mean pairwise correlation.")
@click.option("--stats-start", type=float, default=None, help="Networks: statistics from this time (ms; default 0).")
@click.option("--stats-stop", type=float, default=None, help="Networks: statistics up to this time (ms; default the end).")
@click.option("--rate-rel", type=float, default=_D.rate_rel, show_default=True,
              help="Networks: allowed difference of a population's mean rate, relative to their average.")
@click.option("--rate-abs", type=float, default=_D.rate_abs, show_default=True,
              help="Networks: ... or this many Hz, whichever is larger (sparse populations).")
@click.option("--rate-ks-p", type=float, default=_D.rate_ks_p, show_default=True,
              help="Networks: rate distributions differ when the KS p-value is below this ...")
@click.option("--rate-ks-d", type=float, default=_D.rate_ks_statistic, show_default=True,
              help="... and the KS statistic D above this.")
@click.option("--cv", "cv_abs", type=float, default=_D.cv_abs, show_default=True,
              help="Networks: allowed difference of a population's mean ISI CV.")
@click.option("--correlation", "correlation_abs", type=float, default=_D.correlation_abs, show_default=True,
              help="Networks: allowed difference of the mean pairwise spike-count correlation.")
@click.option("--synchrony", "synchrony_abs", type=float, default=_D.synchrony_abs, show_default=True,
              help="Networks: allowed difference of the synchrony (Golomb's chi).")
@click.option("--stats-sigmas", type=float, default=_D.stats_sigmas, show_default=True,
              help="Networks: a statistic differs only beyond its tolerance and this many standard errors.")
@click.option("--allow-different-experiments", is_flag=True,
              help="Compare runs of different experiments (cells, populations, protocols, durations) on what they "
                   "have in common, noting the differences instead of judging them.")
def command(runs, report, no_plots, allow_different_experiments, count, first_spike, spike_time, window, marginal_count, marginal_first_spike,
            marginal_spike_time, marginal_max_spikes, marginal_isi, marginal_latency, trace_rms, trace_spike_mask, trace_rms_gates,
            trace_rms_concentrations, stats_bin, stats_pairs, stats_start, stats_stop, rate_rel, rate_abs, rate_ks_p,
            rate_ks_d, cv_abs, correlation_abs, synchrony_abs, stats_sigmas):
    """Compare result directories (every pair); exit 1 when they disagree."""
    if len(runs) < 2:
        raise click.UsageError("give at least two result directories")
    tol = Tolerances(count=count, first_spike=first_spike * 1e-3, spike_time=spike_time * 1e-3,
                     window=window * 1e-3, marginal_count=marginal_count,
                     marginal_first_spike=marginal_first_spike * 1e-3,
                     marginal_spike_time=marginal_spike_time * 1e-3, marginal_max_spikes=marginal_max_spikes,
                     marginal_isi=marginal_isi * 1e-3, marginal_latency=marginal_latency * 1e-3, trace_rms_v=trace_rms * 1e-3, trace_rms_other=trace_rms_gates,
                     trace_rms_concentration=trace_rms_concentrations,
                     trace_spike_mask=trace_spike_mask * 1e-3,
                     allow_different_experiments=allow_different_experiments,
                     stats_bin=stats_bin * 1e-3, stats_pairs=stats_pairs,
                     stats_start=None if stats_start is None else stats_start * 1e-3,
                     stats_stop=None if stats_stop is None else stats_stop * 1e-3,
                     rate_rel=rate_rel, rate_abs=rate_abs, rate_ks_p=rate_ks_p, rate_ks_statistic=rate_ks_d,
                     cv_abs=cv_abs, correlation_abs=correlation_abs, synchrony_abs=synchrony_abs,
                     stats_sigmas=stats_sigmas)
    pairs = compare_runs(list(runs), tol, report=report, plots=not no_plots)
    for k, p in enumerate(pairs, 1):
        click.echo(f"\npair {k}: A = {p.label_a}  ({p.path_a})\n        B = {p.label_b}  ({p.path_b})")
        for note in p.notes:
            click.echo(f"  note: {note}")
        click.echo(format_table(pair_table(p)))
        if p.network is not None:
            t0, t1 = p.network.window
            click.echo(f"  population statistics, {t0 * 1e3:g}-{t1 * 1e3:g} ms:")
            click.echo(format_columns(NETWORK_HEADER, network_rows(p), indent="    "))
            click.echo(f"  {p.network.judged_text()}")
        for line in failure_lines(p):
            click.echo(f"  DISAGREE {line}")
    click.echo(f"\nreport: {report}/summary.md")
    if not all(p.agree for p in pairs):
        bad = [k for k, p in enumerate(pairs, 1) if not p.agree]
        click.echo(f"runs disagree (pair{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))})", err=True)
        sys.exit(1)
    judged = [f"pair {k} {p.network.judged_text()}" for k, p in enumerate(pairs, 1) if p.network is not None]
    click.echo("runs agree within tolerances" + (" (" + "; ".join(judged) + ")" if judged else ""))
