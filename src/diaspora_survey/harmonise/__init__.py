"""Harmonisation: codebooks, crosswalks, the harmonised schema and applying a codebook.

``ds.harmonise(wave, codebook)`` applies a codebook to a :class:`~diaspora_survey.io.RawWave`
and returns a :class:`~diaspora_survey.harmonise.apply.Harmonised` (``.data``, ``.issues``);
see :func:`diaspora_survey.harmonise.apply.harmonise`.

Modules: ``codebook`` (the YAML codebook model), ``crosswalks`` (label → category tables,
shipped as CSV), ``schema`` (the harmonised variables and their levels), ``transforms``
(dates, months, countries), ``apply`` (applying a codebook, stacking waves).
"""
from __future__ import annotations

import importlib
import sys
import types

_LAZY = {"harmonise": "apply", "Harmonised": "apply", "Issue": "apply", "stack": "apply",
         "parse_month": "transforms", "Codebook": "codebook"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ``ds.harmonise(wave, codebook)`` is part of the public API, but ``diaspora_survey.harmonise``
# is also this package: Python binds the package attribute to the module on import. A callable
# module keeps ``ds.harmonise(...)`` working in every import order.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .apply import harmonise

        return harmonise(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
