"""The `hhc` command."""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import click

from hhc import backends as registry
from hhc import commands
from hhc.api import compile_model, run_experiment
from hhc.backends.brian2 import cuda as brian2_cuda
from hhc.compiler import load_model
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides
from hhc.compiler.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hhc")
def cli():
    """hhc — Hodgkin–Huxley channels written once, compiled to every simulator."""


def _compute_capability(value):
    """--compute-capability: checked, then handed to the brian2 cuda_standalone build (backends/brian2/cuda.py)
    through the environment, like the other settings of that separate environment."""
    if value is not None:
        os.environ[brian2_cuda.COMPUTE_CAPABILITY_ENV] = str(brian2_cuda.parse_compute_capability(value))
    return value


@cli.command()
@click.argument("chan_file", type=click.Path(dir_okay=False))
@click.option("--target", "-t", default="brian2", show_default=True, help="Backend to generate code for.")
@click.option("--cell", help="Cell to compile (needed when the file defines several).")
@click.option("--device", help="Target device, e.g. runtime or cpp_standalone for brian2.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for the generated files.")
@click.option("--experiment", type=click.Path(dir_okay=False),
              help="Also emit the simulation of this experiment, for targets that have one (e.g. LEMS).")
@click.option("--build-only", is_flag=True, help="Build the target's binary or module, do not run it.")
@click.option("--compute-capability", metavar="X.Y", callback=lambda ctx, p, v: _compute_capability(v),
              help="GPU architecture to compile for (brian2 cuda_standalone; default: the GPU's, else 9.0).")
def compile(chan_file, target, cell, device, out_dir, experiment, build_only, compute_capability):
    """Check CHAN_FILE and generate code for a target."""
    files = compile_model(chan_file, target=target, cell=cell, device=device, out_dir=out_dir,
                          experiment=experiment, build_only=build_only)
    for name in files:
        click.echo(str(Path(out_dir) / name))


@cli.command()
@click.argument("chan_file", type=click.Path(dir_okay=False))
def check(chan_file):
    """Check CHAN_FILE (syntax, names, units, dimensions) and summarise what it defines."""
    model = load_model(chan_file)
    for ch in model.channels:
        gates = ", ".join(f"{g.name}^{g.power} ({g.form.replace('_', '/')}{', Q10' if g.q10 else ''})"
                          for g in ch.gates)
        extra = f"; reversal nernst({ch.nernst})" if ch.nernst else ""
        click.echo(f"channel {ch.name}: gates {gates or 'none (passive)'}; parameters "
                   f"{', '.join(p.name for p in ch.parameters)}{extra}")
    for c in model.cells:
        extra = f", temperature {c.temperature.magnitude:g} degC" if c.temperature is not None else ""
        extra += "".join(f", pool {p.ion} ({p.kind.replace('_', ' ')})" for p in c.pools)
        click.echo(f"cell {c.name}: {len(c.states)} states ({', '.join(c.states)}), inputs "
                   f"{', '.join(i.name for i in c.inputs) or 'none'}{extra}")
    click.echo("ok")


@cli.command()
@click.argument("experiment", type=click.Path(dir_okay=False), required=False)
@click.option("--out", type=click.Path(file_okay=False), help="Result directory (default: runs/<name>-<time>).")
@click.option("--resume", type=click.Path(file_okay=False, exists=True),
              help="Continue the interrupted run in this directory from its last segment (same settings).")
@click.option("--backend", help="Override [backend] name.")
@click.option("--device", help="Override [backend] device (brian2: runtime, cpp_standalone, cuda_standalone).")
@click.option("--threads", type=click.IntRange(min=1), help="Override [backend] threads (OpenMP).")
@click.option("--duration", help='Cut the protocol to this much biological time, e.g. "1 s".')
@click.option("--mpi", type=click.IntRange(min=1), help="Run on this many MPI processes (nest: mpirun -np P).")
@click.option("--launcher", help='Command that starts the MPI processes instead of mpirun, e.g. "srun -n 64".')
@click.option("--overwrite", is_flag=True, help="Replace the results already in --out (refused otherwise).")
@click.option("--float32", "float32", is_flag=True,
              help="Single-precision state (brian2 devices); `hhc compare` against a float64 run shows its accuracy.")
@click.option("--compute-capability", metavar="X.Y", callback=lambda ctx, p, v: _compute_capability(v),
              help="GPU architecture to compile for (brian2 cuda_standalone; default: the GPU's, else 9.0).")
def run(experiment, out, resume, backend, device, threads, duration, mpi, launcher, overwrite, float32,
        compute_capability):
    """Run EXPERIMENT (a TOML file) and write spikes.npz, traces.npz and meta.json.

    Long runs write their results in segments as they go (brian2 cpp_standalone); a run that was
    killed continues with `hhc run --resume DIR`."""
    if resume is not None:
        if experiment or out or backend or device or threads or duration or mpi or launcher or float32 or overwrite:
            raise click.UsageError("--resume DIR takes no other arguments: the run continues with the settings "
                                   "it was started with (DIR/run.json)")
    elif experiment is None:
        raise click.UsageError("give an EXPERIMENT file (or --resume DIR)")
    overrides = RunOverrides(backend=backend, device=device, threads=threads, duration=duration, mpi=mpi,
                             launcher=launcher, precision="float32" if float32 else None)
    out_dir = run_experiment(experiment, out=out, overrides=overrides, resume=resume, overwrite=overwrite)
    click.echo(str(out_dir))


@cli.command()
def backends():
    """List the backends and whether they can run here."""
    for name in registry.names():
        cls = registry.backend_class(name)
        reason = cls.unavailable_reason()
        status = "unavailable: " + reason if reason else ("ok" if cls.capabilities.runs else "code only")
        click.echo(f"{name:10s} {status}  {cls.description}")


def _add_plugin_commands():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"hhc.commands.{info.name}")
        command = getattr(module, "command", None)
        if command is not None:
            cli.add_command(command)


_add_plugin_commands()


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="hhc", standalone_mode=False)
    except HHCError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
