"""`hhc import FILE.nml [-o FILE.chan]`: NeuroML2 channels, single-segment cells and a network (with what
they include) → readable .chan text, checked by compiling it before it is written; a network also
gives an experiment file (FILE.toml beside the .chan)."""
from __future__ import annotations

from pathlib import Path

import click

from hhc.compiler import compile_text
from hhc.compiler.errors import HHCError
from hhc.compiler.neuroml_import import import_file


def _check(text: str, target: Path, nml_file) -> None:
    try:
        compile_text(text, str(target))
    except HHCError as exc:
        raise HHCError(f"the .chan text imported from {nml_file} does not compile (a bug in hhc import):\n{exc}\n"
                       f"--- text\n{text}") from None


@click.command("import")
@click.argument("nml_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="Write the .chan text here (default: stdout; FILE.chan beside FILE.nml when it has a network).")
def command(nml_file, out):
    """Turn the channels, cells and network of a NeuroML2 file into .chan text (and an experiment)."""
    imported = import_file(nml_file)
    network = imported.network is not None
    target = Path(out) if out else Path(nml_file).with_suffix(".chan")
    _check(imported.chan, target, nml_file)
    if not out and not network:
        click.echo(imported.chan, nl=False)
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(imported.chan)
    except OSError as exc:
        raise HHCError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(f"wrote {target}")
    if network:
        toml = target.with_suffix(".toml")
        toml.write_text(imported.experiment(target.name))
        click.echo(f"wrote {toml}  (experiment: network {imported.network.id}, {imported.network.size} × "
                   f"{imported.network.cell})")
