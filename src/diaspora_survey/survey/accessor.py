"""``DataFrame.survey``: build a :class:`~diaspora_survey.survey.design.SurveyDesign` from a frame.

>>> d = df.survey(weights="w", strata="stratum", psu="cluster")   # doctest: +SKIP
>>> d.mean("age", by="wave")                                        # doctest: +SKIP
"""
from __future__ import annotations

import pandas as pd


@pd.api.extensions.register_dataframe_accessor("survey")
class SurveyAccessor:
    def __init__(self, df: pd.DataFrame):
        self._df = df

    def __call__(self, **design_options):
        """Return ``SurveyDesign(df, **design_options)``; same arguments as SurveyDesign."""
        from .design import SurveyDesign

        return SurveyDesign(self._df, **design_options)

    def design(self, **design_options):
        """Alias of calling the accessor: ``df.survey.design(weights="w")``."""
        return self(**design_options)
