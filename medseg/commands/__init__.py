"""Subcommands of the ``medseg`` CLI, each a thin layer over an engine function."""
