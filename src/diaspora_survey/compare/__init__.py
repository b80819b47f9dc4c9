"""Comparison with the general population: reference tables, indicators, standardisation, claims.

``ds.compare(design, reference, ...)`` returns the tidy comparison DataFrame described in
:mod:`diaspora_survey.compare.comparison`.

Modules: ``reference/`` (packaged population tables with their sources, the table model, age
bands), ``indicators`` (the indicator registry), ``comparison`` (sample vs population),
``standardisation`` (direct and indirect age standardisation), ``claims`` (claims files and
verdicts).
"""
from __future__ import annotations

from .._util import lazy_callable_package

_LAZY = {"compare": "comparison", "contrast_with_reference": "comparison",
         "project_designs": "comparison"}

# ``ds.compare(design, reference)`` is public API and ``diaspora_survey.compare`` is also this
# package (Python binds the package attribute to the module on import): a callable module keeps
# ``ds.compare(...)`` working in every import order.
__getattr__ = lazy_callable_package(__name__, _LAZY, call="compare")
