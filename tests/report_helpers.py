"""Small hand-made inputs for the report tests (same column contracts as the pipeline).

Nothing here is estimated by the library: the numbers are chosen so that tests can look
for them (or for their absence) in the rendered outputs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from diaspora_survey.report.content import ReportInputs, WaveInfo

#: An estimate that belongs to a suppressed cell; its formatted forms must never appear.
SECRET = 0.4321          # shown as 43.2 (percent) if it leaked
SECRET_STR = "43.2"


def respondents(seed: int = 1, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wave = np.where(rng.random(n) < 0.6, "w1", "w2")
    country = rng.choice(["GE", "AM", "RS", "DE"], size=n, p=[0.45, 0.35, 0.15, 0.05])
    country[:3] = "MN"                                 # 3 respondents in Mongolia: suppressed
    age = rng.integers(18, 70, size=n)
    from diaspora_survey.schema import derive_age_group

    df = pd.DataFrame({
        "wave": pd.Categorical(wave, categories=["w1", "w2"]),
        "sex": pd.Categorical(rng.choice(["female", "male"], size=n),
                              categories=["female", "male", "other"]),
        "age": pd.array(age, dtype="Int64"),
        "country": country,
        "weight": rng.gamma(4.0, 0.25, size=n),
    })
    df["age_group"] = derive_age_group(df["age"])
    return df


def _row(by, group, indicator, category, est, pop, n, *, src, year, cv=0.05):
    return dict(by=by, group=group, indicator=indicator, category=category, adjustment="crude",
                estimate=est, ci_low=est * 0.9, ci_high=est * 1.1, population=pop,
                difference=est - pop, difference_ci_low=est * 0.9 - pop,
                difference_ci_high=est * 1.1 - pop, ratio=est / pop, ratio_ci_low=est / pop * 0.9,
                ratio_ci_high=est / pop * 1.1, p_value=0.0001, n=n, cv=cv, source=src,
                year=year)


def comparisons() -> pd.DataFrame:
    """Rows shaped like ``diaspora_survey.compare.compare`` output (``by`` = "" overall)."""
    edu = "Rosstat census 2010"
    rows = [_row("", "all", "mean_age", "", 33.4, 48.9, 590, src="RosBRiS", year=2022),
            _row("", "all", "education_distribution", "secondary_general", 0.08, 0.55, 40,
                 src=edu, year=2010),
            _row("", "all", "education_distribution", "incomplete_higher", 0.07, 0.05, 35,
                 src=edu, year=2010),
            _row("", "all", "education_distribution", "higher", 0.85, 0.27, 500, src=edu,
                 year=2010)]
    gof = _row("", "all", "education_distribution", "goodness_of_fit", np.nan, np.nan, 575,
               src=edu, year=2010)
    gof.update(adjustment="rao-scott", statistic=812.5, df=2.0, p_value=1e-12)
    rows.append(gof)
    std = _row("", "all", "entrepreneurs_all", "", 0.27, 0.05, 560, src="Rosstat 2002", year=2002)
    std["adjustment"] = "direct (age x sex)"
    rows.append(std)
    for wave, est in (("w1", 0.21), ("w2", 0.26)):
        rows.append(_row("wave", wave, "entrepreneurs_all", "", est, 0.05, 300,
                         src="Rosstat census 2002", year=2002))
    for country, est, n in (("GE", 0.2, 250), ("AM", 0.3, 200), ("MN", SECRET, 3),
                            ("DE", 0.12, 30)):
        rows.append(_row("country", country, "entrepreneurs_all", "", est, 0.05, n,
                         src="Rosstat census 2002", year=2002,
                         cv=0.5 if country == "DE" else 0.1))
    return pd.DataFrame(rows)


def inputs(**over) -> ReportInputs:
    df = respondents()
    ages = ["18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59", "60-64",
            "65+"]
    pyr = pd.DataFrame([dict(age_group=a, sex=s, estimate=0.05, population=0.04,
                             n=5 if (a == "65+" and s == "female") else 40)
                        for a in ages for s in ("male", "female")])
    edu = pd.DataFrame(dict(category=["Secondary or less", "Incomplete higher",
                                      "Высшее образование"],
                            estimate=[0.08, 0.07, 0.85], ci_low=[0.06, 0.05, 0.82],
                            ci_high=[0.10, 0.09, 0.88], population=[0.55, 0.05, 0.27],
                            n=[40, 35, 500]))
    ent = pd.DataFrame(dict(country=["GE", "AM", "MN", "DE"], estimate=[0.2, 0.3, SECRET, 0.12],
                            ci_low=[0.15, 0.24, 0.1, 0.05], ci_high=[0.25, 0.36, 0.8, 0.22],
                            n=[250, 200, 3, 30]))
    margins = pd.DataFrame(dict(variable=["sex", "sex"], category=["female", "male"],
                                target=[0.45, 0.55], before=[0.6, 0.4], after=[0.45, 0.55],
                                n=[300, 200]))
    diag = dict(n=360, n_eff=300.2, kish_deff=1.2, min=0.3, max=3.1, cv=0.45, iterations=6,
                converged=True, margins=margins)
    kw = dict(
        title="Эмиграция 2022: пример отчёта", date="2024-05-31", data=df, synthetic=True,
        waves=[WaveInfo("w1", "raw/w1.sav", "codebooks/w1.yaml", "sav", "utf-8", 370, 10, 360),
               WaveInfo("w2", "raw/w2.csv", "codebooks/w2.yaml", "csv", "cp1251", 245, 5, 240)],
        exclusions=pd.DataFrame(dict(wave=["w1", "w2"], reason=["under 18", "under 18"],
                                     n=[10, 5])),
        issues=pd.DataFrame(dict(wave=["w1"], variable=["country"], code=["unmapped"],
                                 message=["«Марс» not in the crosswalk → missing"], n=[2])),
        weighting={"w1": diag, "w2": dict(diag, n=240)},
        weighting_method="raking on sex and age group",
        weighting_targets=["sex × age from RosBRiS 2022"],
        comparisons=comparisons(),
        claims=pd.DataFrame(dict(claim=["younger"], statement=["About a decade younger"],
                                 group=["all"], test=["difference <= -8"], value=[-15.5],
                                 ci_low=[-16.0], ci_high=[-15.0], verdict=["supported"],
                                 attribution=["UNVERIFIED as a quote"])),
        age_sex=pyr, education=edu, entrepreneurship_by_country=ent,
        entrepreneurship_population=0.05,
        reference_sources=[("age", "RosBRiS 2022"), ("education", "Rosstat census 2010")],
        methods=[("Estimation", "Taylor linearisation as R survey.")],
        provenance=[("raw", "raw/w1.sav", "ab" * 32)],
        package_version="0.1.0", command="diaspora-survey report",
    )
    kw.update(over)
    return ReportInputs(**kw)
