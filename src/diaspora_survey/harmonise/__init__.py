"""Harmonisation: codebooks, crosswalks, the harmonised schema and applying a codebook.

``ds.harmonise(wave, codebook)`` applies a codebook to a :class:`~diaspora_survey.io.RawWave`
and returns a :class:`~diaspora_survey.harmonise.apply.Harmonised` (``.data``, ``.issues``);
see :func:`diaspora_survey.harmonise.apply.harmonise`.

Modules: ``codebook`` (the YAML codebook model), ``crosswalks`` (label → category tables,
shipped as CSV), ``schema`` (the harmonised variables and their levels), ``transforms``
(dates, months, countries), ``apply`` (applying a codebook, stacking waves).
"""
from __future__ import annotations

from .._util import lazy_callable_package

_LAZY = {"harmonise": "apply", "Harmonised": "apply", "Issue": "apply", "stack": "apply",
         "parse_month": "transforms", "Codebook": "codebook"}

# ``ds.harmonise(wave, codebook)`` is part of the public API, but ``diaspora_survey.harmonise``
# is also this package: Python binds the package attribute to the module on import. A callable
# module keeps ``ds.harmonise(...)`` working in every import order.
__getattr__ = lazy_callable_package(__name__, _LAZY, call="harmonise")
