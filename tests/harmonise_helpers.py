"""Small raw waves and codebooks built in code, shared by the harmonise tests."""
from __future__ import annotations

import pandas as pd

from diaspora_survey.harmonise.codebook import Codebook
from diaspora_survey.io.base import RawWave, SourceInfo, VariableMeta


def make_wave(df: pd.DataFrame, meta: dict | None = None, path: str = "test.sav") -> RawWave:
    """A RawWave of ``df`` as if read from the SPSS file ``path`` (metadata per column)."""
    meta = dict(meta or {})
    for c in df.columns:
        meta.setdefault(c, VariableMeta(c))
    return RawWave(df, meta, SourceInfo(path, "sav", None, "", len(df), df.shape[1]))


def cb(text: str) -> Codebook:
    """A codebook from YAML text (source name ``cb.yaml``)."""
    return Codebook.from_yaml(text, source="cb.yaml")
