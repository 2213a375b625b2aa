"""Extra `hhc` subcommands. Each module here defines `command`, a click command; cli.py adds them
all, so a feature brings its own command without editing the core CLI."""
