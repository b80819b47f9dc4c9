"""Comparison with the general population: reference tables, indicators, standardisation, claims.

``ds.compare(design, reference, ...)`` returns the tidy comparison DataFrame described in
:mod:`diaspora_survey.compare.comparison`.

Modules: ``reference/`` (packaged population tables with their sources, the table model, age
bands), ``indicators`` (the indicator registry), ``comparison`` (sample vs population),
``standardisation`` (direct and indirect age standardisation), ``claims`` (claims files and
verdicts).
"""
from __future__ import annotations

import importlib
import sys
import types

_LAZY = {"compare": "comparison", "contrast_with_reference": "comparison",
         "project_designs": "comparison"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ``ds.compare(design, reference)`` is public API and ``diaspora_survey.compare`` is also this
# package (Python binds the package attribute to the module on import): a callable module keeps
# ``ds.compare(...)`` working in every import order.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .comparison import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
