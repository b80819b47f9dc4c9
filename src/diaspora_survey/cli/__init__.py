"""The ``diaspora-survey`` command line (typer): ``app`` and one module per command.

Commands only parse their options, call the library (mostly :mod:`diaspora_survey.pipeline`)
and print; nothing outside this package imports it.
"""
from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
