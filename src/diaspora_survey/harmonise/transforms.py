"""Transforms of raw values that need no codebook: months from free text, dates from text.

``parse_month`` reads departure months as respondents type them (``03.2022``, ``2022-03``,
``март 2022``); ``parse_date_values`` reads interview dates as ISO 8601 or day-first, never
month-first (Russian and European exports write 05.03.2022 for 5 March).
"""
from __future__ import annotations

import re

import pandas as pd

# ---- month parsing -------------------------------------------------------------------------------

def _month_forms() -> dict[str, int]:
    ru = [("январь", "января", "январе", "янв"), ("февраль", "февраля", "феврале", "фев", "февр"),
          ("март", "марта", "марте", "мар"), ("апрель", "апреля", "апреле", "апр"),
          ("май", "мая", "мае"), ("июнь", "июня", "июне", "июн"), ("июль", "июля", "июле", "июл"),
          ("август", "августа", "августе", "авг"),
          ("сентябрь", "сентября", "сентябре", "сен", "сент"), ("октябрь", "октября", "октябре", "окт"),
          ("ноябрь", "ноября", "ноябре", "ноя", "нояб"), ("декабрь", "декабря", "декабре", "дек")]
    en = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
    out: dict[str, int] = {}
    for i, forms in enumerate(ru, start=1):
        for f in forms:
            out[f] = i
    for i, name in enumerate(en, start=1):
        out[name] = i
        out[name[:3]] = i
    out["sept"] = 9
    return out


MONTH_FORMS = _month_forms()
_P_MY = re.compile(r"^(\d{1,2})\s*[./\-]\s*(\d{4})$")
_P_YM = re.compile(r"^(\d{4})\s*[./\-]\s*(\d{1,2})$")
_P_DMY = re.compile(r"^(\d{1,2})\s*[./\-]\s*(\d{1,2})\s*[./\-]\s*(\d{4})(?:\s+[\d:]+)?$")
_P_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t][\d:.]+)?$")
_P_NY = re.compile(r"^([a-zа-я]+)\.?,?\s*(\d{4})(?:\s*(?:г|года?|year)\.?)?$")
_P_YN = re.compile(r"^(\d{4})\s*(?:г\.?|года?)?,?\s*([a-zа-я]+)\.?$")


def parse_month(text) -> tuple[int, int] | None:
    """``(year, month)`` from a free-text month, or None.

    Accepts ``03.2022``, ``3.2022``, ``03/2022``, ``2022-03``, ``2022.03``, full dates
    ``15.03.2022`` / ``2022-03-15``, and month names in Russian (any case: март, марта, марте,
    мар., сент.) or English (March, mar, Sept) before or after the year (``март 2022``,
    ``2022 март``, ``марта 2022 г.``). Years 1900–2100 only.
    """
    if text is None:
        return None
    s = str(text).strip().casefold().replace("ё", "е")
    s = re.sub(r"\s+", " ", s)
    if not s:
        return None
    y = m = None
    if mt := _P_MY.match(s):
        m, y = int(mt.group(1)), int(mt.group(2))
    elif mt := _P_YM.match(s):
        y, m = int(mt.group(1)), int(mt.group(2))
    elif mt := _P_DMY.match(s):
        m, y = int(mt.group(2)), int(mt.group(3))
    elif mt := _P_YMD.match(s):
        y, m = int(mt.group(1)), int(mt.group(2))
    elif mt := _P_NY.match(s):
        m, y = MONTH_FORMS.get(mt.group(1)), int(mt.group(2))
    elif mt := _P_YN.match(s):
        y, m = int(mt.group(1)), MONTH_FORMS.get(mt.group(2))
    if y is None or m is None or not (1 <= m <= 12) or not (1900 <= y <= 2100):
        return None
    return y, m


# ---- dates from text ------------------------------------------------------------------------------

DATE_FORMATS = ("%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d/%m/%Y", "%d/%m/%Y %H:%M",
                 "%d/%m/%Y %H:%M:%S", "%d.%m.%y", "%Y/%m/%d", "%Y.%m.%d")
DATE_MIN, DATE_MAX = pd.Timestamp("1900-01-01"), pd.Timestamp("2100-12-31")


def parse_date_values(values: pd.Series) -> pd.Series:
    """Dates from distinct text values: ISO 8601 first, then day-first forms (``15.03.2022``,
    ``15/03/2022``, with or without a time); never month-first. NaT where none fits."""
    txt = values.astype("string").str.strip()
    out = pd.to_datetime(txt.where(txt.str.match(r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$", na=False)),
                         format="ISO8601", errors="coerce")
    for fmt in DATE_FORMATS:
        todo = out.isna() & txt.notna()
        if not todo.any():
            break
        out = out.where(~todo, pd.to_datetime(txt.where(todo), format=fmt, errors="coerce"))
    return out
