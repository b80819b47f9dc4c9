"""Design-based estimation, as R's ``survey`` package (Lumley 2010).

Modules: ``design`` (:class:`SurveyDesign`: strata, clusters, fpc, lonely PSUs, domains),
``linearisation`` (Taylor-linearised variances, stage by stage), ``replicate`` (JK1, JKn, BRR,
Fay, bootstrap and user replicate weights), ``estimators`` (means, totals, proportions,
ratios, quantiles, intervals, contrasts, Rao–Scott tests), ``glm`` (design-based GLMs) and
``accessor`` (the ``DataFrame.survey`` accessor).
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "SurveyDesign":
        from .design import SurveyDesign

        globals()[name] = SurveyDesign
        return SurveyDesign
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
