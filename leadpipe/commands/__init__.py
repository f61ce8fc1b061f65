"""Operator subcommands of the ``leadpipe`` CLI, one module per group."""
