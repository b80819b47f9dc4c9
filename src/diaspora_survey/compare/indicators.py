"""The indicator registry: what a comparison computes, declared as data.

Each :class:`Indicator` says which harmonised variable it reads, whom it is about (its
universe), how it is estimated, which reference table kinds supply the population figure
and how it is standardised. The comparison (:func:`diaspora_survey.compare.comparison.compare`),
the claims (``indicator:`` of a claim), the report (labels, topic tables) and the CLI
(``diaspora-survey compare --indicator``, ``--list-indicators``) all read this registry.

Built-in indicators (:data:`BUILTIN`)::

    mean_age, median_age, age_distribution, share_aged_18_34      age (age_distribution tables)
    education_distribution, higher_education, higher_education_by_age
                                               education (education_distribution tables by
                                               age; higher_education_share tables)
    entrepreneurs_all, entrepreneurs_employed  status in employment (employment_status,
                                               entrepreneur_share tables)

A project adds its own indicator for any harmonised categorical or boolean variable in
``diaspora-survey.toml`` (see docs/indicators.md)::

    [[compare.indicators]]
    name = "married"
    label = "Married (%)"
    variable = "marital_status"          # a harmonised column
    categories = ["married"]             # omit for the whole distribution / a boolean
    standardise = "age_sex"              # age_sex | age | none

with a reference table of kind ``category_distribution`` (or ``category_share``) whose
``variable`` is the same column, in ``[reference] tables``.
"""
from __future__ import annotations

from dataclasses import dataclass

ESTIMATORS = ("mean", "median", "distribution", "share", "share_by_age", "share_or_distribution")
STANDARDS = ("population", "employed", "none")


@dataclass(frozen=True)
class Indicator:
    """One indicator of the comparison (a declarative entry; see the module docstring).

    name: id used in results, claims and the CLI. variable: harmonised column.
    universe: whom the estimate is about, in words, and ``universe_values``: the
    restriction as ``{variable: (values, ...)}`` (empty = every respondent in the frame
    with a known value). estimator: ``mean``, ``median``, ``distribution`` (shares of the
    categories + Rao-Scott test), ``share`` (share of ``categories``), ``share_by_age``.
    table_kinds: reference table kinds, in the order they are tried. standard: the
    population whose age structure a direct standardisation uses — ``population`` (the
    population in the frame), ``employed`` (the employed population: a rate among the
    employed is never standardised to the whole population), ``none``. indirect: offer the
    indirect (sample-standard) comparison where the reference has age-specific rates.
    """

    name: str
    label: str
    variable: str
    estimator: str
    table_kinds: tuple[str, ...]
    universe: str = "respondents in the age frame"
    universe_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    categories: tuple[str, ...] = ()
    unit: str = "proportion"
    standard: str = "none"
    indirect: bool = False
    topic: str = "project"
    builtin: bool = False
    table: str = ""                  # a project indicator may name one reference table id
    cells: str = ""                  # age_sex | age: a project indicator's own choice
    description: str = ""

    def meta(self) -> dict:
        return {"name": self.name, "label": self.label, "variable": self.variable,
                "estimator": self.estimator, "universe": self.universe,
                "categories": list(self.categories), "table_kinds": list(self.table_kinds),
                "table": self.table, "standard": self.standard, "indirect": self.indirect,
                "unit": self.unit, "topic": self.topic, "builtin": self.builtin,
                "description": self.description}


_EMPLOYED = (("employment_status", ("employee", "employer", "own_account")),)

BUILTIN: tuple[Indicator, ...] = (
    Indicator("mean_age", "Mean age (years)", "age", "mean", ("age_distribution",),
              unit="years", topic="age", builtin=True,
              description="weighted mean age in completed years"),
    Indicator("median_age", "Median age (years)", "age", "median", ("age_distribution",),
              unit="years", topic="age", builtin=True,
              description="median age, svyquantile(qrule='math') with a Woodruff interval"),
    Indicator("age_distribution", "Age group (%)", "age", "distribution", ("age_distribution",),
              topic="age", builtin=True, description="shares of the age bands + Rao-Scott test"),
    Indicator("share_aged_18_34", "Aged 18–34 (%)", "age", "share", ("age_distribution",),
              topic="age", builtin=True, description="share aged 18-34 (within the frame)"),
    Indicator("education_distribution", "Education (%)", "education", "distribution",
              ("education_distribution",), universe="respondents in the frame with a known "
              "education", topic="education", builtin=True,
              description="shares of the census education groups + Rao-Scott test"),
    Indicator("higher_education", "Higher education (%)", "education", "share",
              ("education_distribution", "higher_education_share"),
              universe="respondents in the frame with a known education",
              categories=("higher_unspecified", "bachelor", "specialist", "master", "doctorate"),
              standard="population", indirect=True, topic="education", builtin=True,
              description="share with higher education (ISCED 6+)"),
    Indicator("higher_education_by_age", "Higher education by age (%)", "education",
              "share_by_age", ("education_distribution", "higher_education_share"),
              universe="respondents with a known education, by age band of the table",
              categories=("higher_unspecified", "bachelor", "specialist", "master", "doctorate"),
              topic="education", builtin=True,
              description="share with higher education in each age band of the reference table"),
    Indicator("entrepreneurs_all", "Entrepreneurs, all adults (%)", "employment_status", "share",
              ("entrepreneur_share",), universe="respondents in the frame with a known status",
              categories=("employer", "own_account"), standard="population", indirect=True,
              topic="entrepreneurship", builtin=True,
              description="employers and own-account workers among all adults"),
    Indicator("entrepreneurs_employed", "Entrepreneurs among the employed (%)",
              "employment_status", "share", ("employment_status", "entrepreneur_share"),
              universe="the employed (employee, employer, own_account) in the frame",
              universe_values=_EMPLOYED, categories=("employer", "own_account"),
              standard="employed", indirect=True, topic="entrepreneurship", builtin=True,
              description="employers and own-account workers among the employed"),
)

REGISTRY: dict[str, Indicator] = {i.name: i for i in BUILTIN}
INDICATORS: tuple[str, ...] = tuple(REGISTRY)      # names of the built-in indicators
TOPICS = ("age", "education", "entrepreneurship", "project")


def registry(extra=()) -> dict[str, Indicator]:
    """The built-in indicators plus ``extra`` (project indicators), by name."""
    out = dict(REGISTRY)
    for i in extra or ():
        out[i.name] = i
    return out


def get(name: str, extra=()) -> Indicator:
    from ..errors import EstimationError

    reg = registry(extra)
    if name not in reg:
        raise EstimationError(f"unknown indicator {name!r}", code="compare.bad_indicator",
                              hint="choose from: " + ", ".join(reg))
    return reg[name]


def label(name: str, extra=()) -> str:
    i = registry(extra).get(name)
    return i.label if i is not None else name


_FIELDS = ("name", "label", "variable", "categories", "universe", "standardise", "table",
           "description")


def from_config(d: dict, where: str = "[[compare.indicators]]") -> Indicator:
    """A project indicator from its ``[[compare.indicators]]`` entry (validated).

    Fields: ``name`` (new, not a built-in), ``variable`` (harmonised column), optional
    ``label``, ``categories`` (the categories counted as "yes": a share; omit for a boolean
    variable — share of true — or for the whole distribution with ``distribution = true``
    implied), ``universe`` (``{column = [values]}``: whom the share is of, e.g. the
    employed), ``standardise`` (``age_sex``, ``age`` or ``none``), ``table`` (a reference
    table id; default: the nearest vintage of kind ``category_distribution`` /
    ``category_share`` with the same ``variable``), ``description``.
    """
    import re

    from ..errors import ProjectError

    def err(msg, hint, key=""):
        return ProjectError(msg, code="compare.bad_indicator",
                            where=f"{where}{'.' + key if key else ''}", hint=hint)

    if not isinstance(d, dict):
        raise err("an indicator must be a table of keys", "[[compare.indicators]] name = ... variable = ...")
    bad = [k for k in d if k not in _FIELDS]
    if bad:
        raise err(f"unknown key(s) {bad}", "allowed: " + ", ".join(_FIELDS), bad[0])
    name = str(d.get("name") or "").strip()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise err(f"name {name!r} must be lower-case letters, digits and _", "e.g. name = \"married\"", "name")
    if name in REGISTRY:
        raise err(f"{name!r} is a built-in indicator", "choose another name", "name")
    var = str(d.get("variable") or "").strip()
    if not var:
        raise err("variable is missing", "the harmonised column, e.g. variable = \"marital_status\"", "variable")
    cats = d.get("categories") or ()
    if isinstance(cats, str):
        cats = (cats,)
    if not isinstance(cats, (list, tuple)) or not all(isinstance(c, (str, bool, int)) for c in cats):
        raise err("categories must be a list of category codes", "e.g. categories = [\"married\"]", "categories")
    uni = d.get("universe") or {}
    if not isinstance(uni, dict) or not all(isinstance(v, (list, tuple)) and v for v in uni.values()):
        raise err("universe must map columns to lists of values",
                  "e.g. universe = { employment_status = [\"employee\", \"employer\", \"own_account\"] }",
                  "universe")
    std = str(d.get("standardise") or "age_sex")
    if std not in ("age_sex", "age", "none"):
        raise err(f"standardise {std!r} is not age_sex, age or none", "age_sex | age | none", "standardise")
    universe_values = tuple((str(k), tuple(str(x) for x in v)) for k, v in uni.items())
    words = ("respondents in the frame with a known " + var) if not uni else (
        "respondents in the frame with " + "; ".join(f"{k} in {', '.join(v)}" for k, v in universe_values))
    return Indicator(
        name=name, label=str(d.get("label") or name.replace("_", " ").capitalize() + " (%)"),
        variable=var, estimator="share" if cats else "share_or_distribution",
        table_kinds=("category_distribution", "category_share"), universe=words,
        universe_values=universe_values, categories=tuple(str(c) for c in cats),
        standard=("none" if std == "none" else ("population" if not uni else "subpopulation")),
        indirect=True, topic="project", builtin=False, table=str(d.get("table") or ""),
        cells="" if std == "none" else std,
        description=str(d.get("description") or ""))


def standardise_mode(ind: Indicator, default: str | None) -> str | None:
    """The direct-standardisation cells for ``ind`` given the comparison's ``standardise``
    option (``age_sex``, ``age`` or None): None when the indicator is not standardised."""
    if ind.standard == "none" or default is None:
        return None
    return ind.cells or default


__all__ = ["Indicator", "BUILTIN", "REGISTRY", "INDICATORS", "TOPICS", "registry", "get",
           "label", "from_config", "ESTIMATORS", "STANDARDS"]
