"""`hhc validate`: every model x every backend that runs here, against the SciPy reference."""
from __future__ import annotations

import sys

import click

from hhc.validate import LONG_TONIC, SPREAD, SPREAD_NEURONS, format_matrix, validate


@click.command("validate")
@click.option("--backends", "backend_specs", help='Comma-separated backends, optionally with a device '
              '("brian2,brian2:cpp_standalone"); default: every registered backend.')
@click.option("--models", help="Comma-separated cell names or model file stems (default: all in models/).")
@click.option("--dt", type=float, default=0.01, show_default=True, help="Time step for the backends (ms).")
@click.option("--method", default="auto", show_default=True, help="Integration method for the backends.")
@click.option("--out", type=click.Path(file_okay=False), default="validate-report", show_default=True,
              help="Folder for validate.md, validate.json, the references and the runs.")
@click.option("--no-long", "no_long", is_flag=True, help=f"Leave out the long cases ({LONG_TONIC:g} s of tonic "
              f"firing; {SPREAD_NEURONS} neurons from spread initial v over {SPREAD:g} s): the 220 ms protocols only.")
def command(backend_specs, models, dt, method, out, no_long):
    """Run the standard protocol set (silence, rheobase, strong drive; then the long cases: tonic firing
    and a spread of initial v) on every model and backend."""
    specs = [s.strip() for s in backend_specs.split(",") if s.strip()] if backend_specs else None
    names = [s.strip() for s in models.split(",") if s.strip()] if models else None
    matrix, unavailable, _ = validate(specs, names, out=out, dt=dt * 1e-3, method=method, long=not no_long,
                                      say=lambda m: click.echo(m, err=True))
    click.echo(format_matrix(matrix, unavailable))
    click.echo(f"report: {out}/validate.md")
    # N/A (the backend cannot express this model: said in the matrix) is not a disagreement
    if any(c.status in ("FAIL", "ERROR") for c in matrix.values()):
        sys.exit(1)
