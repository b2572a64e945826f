"""The `socialcard` command line: composes the domains' typer apps."""
