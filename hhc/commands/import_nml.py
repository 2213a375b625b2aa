"""`hhc import FILE.nml [-o FILE.chan]`: NeuroML2 ionChannelHH channels and single-compartment cells
→ readable .chan text (checked by compiling it before it is written)."""
from __future__ import annotations

from pathlib import Path

import click

from hhc.compiler import compile_text
from hhc.compiler.errors import HHCError
from hhc.nml_import import import_file


@click.command("import")
@click.argument("nml_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the .chan text here (default: stdout).")
def command(nml_file, out):
    """Turn the channels and cells of a NeuroML2 file into .chan text."""
    text = import_file(nml_file)
    target = Path(out) if out else Path(nml_file).with_suffix(".chan")
    try:
        compile_text(text, str(target))
    except HHCError as exc:
        raise HHCError(f"the .chan text imported from {nml_file} does not compile (a bug in hhc import):\n{exc}\n"
                       f"--- text\n{text}") from None
    if out:
        Path(out).write_text(text)
        click.echo(out)
    else:
        click.echo(text, nl=False)
