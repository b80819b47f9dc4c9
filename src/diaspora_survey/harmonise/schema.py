"""The harmonised schema: variable names, types, categories and the derivation rules.

Contract (../shared/DESIGN.md): the variable names and category codes below are relied on
by codebooks, weighting targets, reference tables and reports. Derived variables follow
fixed rules defined here and nowhere else.

Education levels are aligned with the Russian census 2021 questionnaire (ВПН-2020,
question on education) and ISCED 2011 as mapped for the Russian Federation (UNESCO-UIS
ISCED mappings): a specialist degree (специалитет) is a long first degree, ISCED 7;
training of highly qualified personnel (аспирантура, подготовка кадров высшей
квалификации) is ISCED 8. ``higher_unspecified`` is for surveys that ask only "высшее"
without the degree; it counts as higher education.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import datetime as _dt


@dataclass(frozen=True)
class Level:
    code: str
    label_en: str
    label_ru: str
    isced: str = ""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str  # "category" | "ordered" | "int" | "bool" | "string" | "date"
    description: str
    levels: tuple[Level, ...] = field(default_factory=tuple)
    derived: bool = False

    @property
    def categories(self) -> list[str]:
        return [lv.code for lv in self.levels]


EDUCATION_LEVELS: tuple[Level, ...] = (
    Level("primary_or_less", "Primary or less", "Начальное общее и ниже", "0-1"),
    Level("basic_general", "Lower secondary (basic general)", "Основное общее", "2"),
    Level("secondary_general", "Upper secondary general", "Среднее общее", "3"),
    Level("secondary_vocational", "Secondary vocational", "Среднее профессиональное", "3-5"),
    Level("incomplete_higher", "Incomplete higher", "Неполное высшее", "4-5"),
    Level("higher_unspecified", "Higher, degree not stated", "Высшее (уровень не указан)", "6-8"),
    Level("bachelor", "Bachelor", "Высшее — бакалавриат", "6"),
    Level("specialist", "Specialist", "Высшее — специалитет", "7"),
    Level("master", "Master", "Высшее — магистратура", "7"),
    Level("doctorate", "Doctorate (highly qualified personnel)",
          "Высшее — подготовка кадров высшей квалификации", "8"),
)
HIGHER_EDUCATION = frozenset({"higher_unspecified", "bachelor", "specialist", "master", "doctorate"})

EMPLOYMENT_LEVELS: tuple[Level, ...] = (
    Level("employee", "Employee", "Работает по найму"),
    Level("employer", "Employer (with employees)", "Работодатель (с наёмными работниками)"),
    Level("own_account", "Own-account worker / self-employed", "Работает на себя без наёмных работников"),
    Level("unemployed", "Unemployed", "Безработный"),
    Level("student", "Student", "Учащийся / студент"),
    Level("retired", "Retired", "Пенсионер"),
    Level("homemaker", "Homemaker / parental leave", "Домохозяйка / в отпуске по уходу за ребёнком"),
    Level("other", "Other", "Другое"),
)
ENTREPRENEUR = frozenset({"employer", "own_account"})
EMPLOYED = frozenset({"employee", "employer", "own_account"})

SEX_LEVELS: tuple[Level, ...] = (
    Level("female", "Female", "Женский"),
    Level("male", "Male", "Мужской"),
    Level("other", "Other", "Другое"),
)

# Age bands: (low, high) inclusive, high=None for the open top band.
DEFAULT_AGE_BANDS: tuple[tuple[int, int | None], ...] = (
    (18, 24), (25, 29), (30, 34), (35, 39), (40, 44), (45, 49),
    (50, 54), (55, 59), (60, 64), (65, None),
)

WAR_START = _dt.date(2022, 2, 24)
MOBILISATION = _dt.date(2022, 9, 21)
COHORT_LEVELS: tuple[Level, ...] = (
    Level("before_2022-02-24", "Before 24 Feb 2022", "До 24.02.2022"),
    Level("2022-02-24_to_2022-09-20", "24 Feb – 20 Sep 2022", "24.02.2022 – 20.09.2022"),
    Level("2022-09-21_to_2022-12-31", "21 Sep – 31 Dec 2022 (after mobilisation)", "21.09.2022 – 31.12.2022"),
    Level("2023_or_later", "2023 or later", "2023 и позже"),
)


# Host-country regions (harmonise/crosswalks/host_region.csv maps ISO codes to them; a project
# CSV may regroup countries or add its own regions, see harmonise/regions.py).
REGION_LEVELS: tuple[Level, ...] = (
    Level("eu_eea", "EU/EEA", "ЕС/ЕЭЗ"),
    Level("other_europe", "Other Europe", "Другие страны Европы"),
    Level("south_caucasus", "South Caucasus", "Южный Кавказ"),
    Level("central_asia", "Central Asia", "Центральная Азия"),
    Level("turkey", "Turkey", "Турция"),
    Level("israel", "Israel", "Израиль"),
    Level("middle_east_gulf", "Middle East/Gulf", "Ближний Восток/Залив"),
    Level("south_east_asia", "South-East Asia", "Юго-Восточная Азия"),
    Level("americas", "Americas", "Америка"),
    Level("other", "Other", "Другие"),
    Level("russia", "Russia (returned)", "Россия (вернулись)"),
)
#: ``host_region`` of respondents living in Russia (returnees).
RUSSIA = "RU"


def age_band_labels(bands: Sequence[tuple[int, int | None]] = DEFAULT_AGE_BANDS) -> list[str]:
    """Labels such as ``18-24`` and ``65+`` for the given bands."""
    return [f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in bands]


SCHEMA: dict[str, Variable] = {v.name: v for v in (
    Variable("wave", "category", "Wave id from the project file"),
    Variable("resp_id", "string", "Respondent id, unique within a wave"),
    Variable("sex", "category", "Sex", SEX_LEVELS),
    Variable("age", "int", "Age in completed years at interview"),
    Variable("age_group", "ordered", "Age band (derived from age)",
             tuple(Level(lb, lb, lb) for lb in age_band_labels()), derived=True),
    Variable("education", "ordered", "Highest completed education (census 2021 / ISCED 2011)",
             EDUCATION_LEVELS),
    Variable("higher_education", "bool", "Higher education, ISCED 6+ (derived from education)",
             derived=True),
    Variable("employment_status", "category", "Status in employment", EMPLOYMENT_LEVELS),
    Variable("entrepreneur", "bool", "Employer or own-account worker (derived)", derived=True),
    Variable("country", "category", "Country of current residence, ISO 3166-1 alpha-2"),
    Variable("departure_date", "date", "Month of departure from Russia (first of the month)"),
    Variable("departure_cohort", "ordered", "Departure cohort (derived from departure_date)",
             COHORT_LEVELS, derived=True),
    Variable("birth_year", "int", "Year of birth (a fixed attribute, checked across panel waves)"),
    Variable("host_region", "category", "Region of the country of residence (derived from country "
             "through crosswalks/host_region.csv)", REGION_LEVELS, derived=True),
    Variable("returned", "bool", "Now living in Russia (from a current-residence question; derived "
             "from country = RU when not asked)"),
    Variable("moved_on", "bool", "Now living in a third country (asked, or from linked panel waves)"),
    Variable("return_date", "date", "Month of return to Russia (first of the month)"),
    Variable("panel_id", "string", "Link key across the waves of a panel"),
)}

DERIVED = tuple(name for name, v in SCHEMA.items() if v.derived)


# ---- derivation rules (vectorised; pandas is imported lazily to keep the CLI fast) ----

def derive_age_group(age, bands: Sequence[tuple[int, int | None]] = DEFAULT_AGE_BANDS):
    """Ordered categorical of age bands; ages below the first band or missing give NA."""
    import numpy as np
    import pandas as pd

    labels = age_band_labels(bands)
    edges = [lo for lo, _ in bands] + [np.inf]
    a = pd.to_numeric(pd.Series(age), errors="coerce").astype("float64")
    codes = np.searchsorted(np.asarray(edges), a.to_numpy(), side="right") - 1
    codes = np.where(np.isnan(a.to_numpy()) | (codes < 0) | (codes >= len(labels)), -1, codes)
    # a gap between bands (e.g. 18-24 then 30-34) also yields NA
    his = np.array([hi if hi is not None else np.inf for _, hi in bands], dtype=float)
    inside = (codes >= 0) & (a.to_numpy() <= his[np.clip(codes, 0, None)])
    codes = np.where(inside, codes, -1)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True),
                     index=getattr(age, "index", None), name="age_group")


def derive_higher_education(education):
    """Boolean (nullable): True for ISCED 6+ levels, NA where education is missing."""
    import pandas as pd

    s = pd.Series(education)
    out = s.astype("object").isin(HIGHER_EDUCATION).astype("boolean")
    out[s.isna()] = pd.NA
    return out.rename("higher_education")


def derive_entrepreneur(employment_status):
    """Boolean (nullable): employer or own-account worker; NA where status is missing."""
    import pandas as pd

    s = pd.Series(employment_status)
    out = s.astype("object").isin(ENTREPRENEUR).astype("boolean")
    out[s.isna()] = pd.NA
    return out.rename("entrepreneur")


def derive_departure_cohort(departure_date):
    """Ordered categorical of departure cohorts from ``departure_date``.

    Cohorts start on 24 Feb 2022 (the invasion), 21 Sep 2022 (the mobilisation order) and
    1 Jan 2023. Harmonised departure dates have month precision and are stored as the first
    of the month; a month that contains a cohort's start date belongs to that cohort:
    February 2022 counts as ``2022-02-24_to_2022-09-20`` and September 2022 as
    ``2022-09-21_to_2022-12-31``. In surveys of the wartime emigration a departure in those
    months was, for most respondents, a reaction to that event (the exodus after
    21 September was several times larger than the departures earlier in the month).
    A date with a known day (not the 1st) is placed by the day.
    """
    import numpy as np
    import pandas as pd

    d = pd.to_datetime(pd.Series(departure_date), errors="coerce")
    labels = [lv.code for lv in COHORT_LEVELS]
    exact = np.array([np.datetime64(WAR_START), np.datetime64(MOBILISATION),
                      np.datetime64("2023-01-01")], dtype="datetime64[ns]")
    by_month = exact.astype("datetime64[M]").astype("datetime64[ns]")
    vals = d.to_numpy(dtype="datetime64[ns]")
    month_only = (d.dt.day == 1).to_numpy(dtype=bool, na_value=False)
    codes = np.where(month_only, np.searchsorted(by_month, vals, side="right"),
                     np.searchsorted(exact, vals, side="right"))
    codes = np.where(np.isnat(vals), -1, codes)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True),
                     index=d.index, name="departure_cohort")
