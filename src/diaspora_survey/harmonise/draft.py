"""``codebook draft``: a first codebook for a raw file, its columns picked by meaning.

Each harmonised variable is matched against every column by what the column *holds*, not by
fragments of its name:

* **value-label sets** — the share of a column's (non-missing) value labels that the crosswalks
  know as sexes, education levels, employment statuses or countries; a rating scale
  («Extremely bad» … «Extremely good», labels that are only numbers) is never an education
  level or an employment status;
* **value ranges** — an age is a whole number between 14 and 110 whose values carry no value
  labels; a birth year a whole number between 1900 and 2015; a survey weight positive, not
  constant and not all whole numbers; an id unique per row;
* **variable labels** (and names) as supporting evidence — «Highest level of education»,
  «Age of respondent», «Design weight» — with a penalty when the label is about someone else
  (partner, father, mother, household member, interviewer) or about birth or citizenship for
  the country of residence; and coverage (a respondent's own age is answered by nearly all).

Every candidate gets a confidence in [0, 1] with its reasons. A column is used when the best
candidate reaches :data:`PICK` and is clearly ahead of the next one (by :data:`MARGIN`, or by
:data:`TIE` when the best is above :data:`SURE`); otherwise the variable is left as a ``TODO`` that lists the
candidates — a TODO is cheap, a wrong guess is not. The draft always loads
(``Codebook.from_yaml``): a variable whose codes the crosswalks cannot map at all is written
commented out.

When the employment column is a main-activity question whose «paid work» answer does not say
employee, employer or own-account worker, and the file has an employment-relation question
(and a number-of-employees question), the draft writes ``rules:`` over those columns
(docs/codebook.md, "Rules over several columns") for the user to check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


PICK = 0.65     # lowest confidence at which a column is used
MARGIN = 0.10   # … and how far ahead of the next candidate it must be
SURE = 0.85     # … unless it is at least this sure
TIE = 0.05      # two candidates this close are a tie: a TODO, whatever their confidence
SHOWN = 3       # candidates listed per variable

_KW = {
    "id": r"\b(id|idno|respid|resp id|caseid|case id|case|serial|identification|identifier|"
          r"номер анкеты|анкета|код респондента|laufnummer|fallnummer|lfdn)\b",
    "age": r"\b(age|agea|возраст|vozrast|сколько вам лет|сколько вам полных лет|полных лет|alter|edad|how old)\b",
    "birth_year": r"(birth|born|рожд|rozhd|geburt|\byob\b|yrbrn|byear)",
    "sex": r"\b(sex|gender|пол|pol|ваш пол|geschlecht|gndr|sexe)\b",
    "education": r"(educat|образован|bildung|schulabschluss|qualification|edulvl|isced|obraz)",
    "employment_status": r"(employment|main activity|activity|занятост|zanyat|род занятий|работаете|чем вы занимаетесь|"
                         r"erwerbs|beschäftig|work status|working status|economic status)",
    "country": r"(country|стран|strana|\bland\b|residence|живете|проживаете|cntry)",
    "weight": r"\b(weight|weights|weighting|wt|wgt|вес|весовой|ves|gewicht|gewichtung|dweight|pspwght|pweight)\b",
    "departure_date": r"(выезд|vyezd|уехал|отъезд|depart|emigrat|relocat|left russia|покинул)",
    "interview_date": r"(interview|intervyu|интервью|заполн|zapoln|erhebung|survey date|дата опроса|date of survey)",
    "employees": r"(number of employees|employees|наемных|наёмных|сотрудник|beschäftigte|mitarbeiter)",
}
_OTHER_PERSON = re.compile(
    r"(partner|spouse|husband|wife|father|mother|parent's|parents'|household member|person in household|"
    r"in household|\bchild|\bson\b|daughter|супруг|мужа|жены|отца|матери|родител|ребен|vater|mutter|"
    r"interviewer|интервьюер)")
_NOT_RESIDENCE = re.compile(r"(birth|born|citizen|nationality|рожд|гражданств|national|ancestr|parent)")
_SCALE_WORDS = re.compile(r"(extremely|strongly|very|agree|disagree|satisf|like|dislike|совершенно|полностью|"
                          r"очень|согласен|не согласен|доволен|trust|important|often|never|always|likely)")
_WORKING = re.compile(r"(paid work|\bworking\b|in work|at work|employed|в работе|работаю\b|работает\b|"
                      r"erwerbstätig|berufstätig)")
_NOT_WORKING = re.compile(r"(not working|not in work|не работа|unemployed|nicht erwerbstätig)")
_NOT_EMPLOYED_CATS = frozenset({"student", "retired", "unemployed", "homemaker"})


def _norm(text) -> str:
    return " ".join(str(text or "").casefold().replace("ё", "е").replace("_", " ").split())


# ---- what a column holds ---------------------------------------------------------------------

@dataclass
class Profile:
    """What one raw column holds, as far as the draft needs it."""

    name: str
    label: str
    position: int
    kind: str                     # numeric | text | date
    n: int                        # rows
    n_valid: int                  # rows with a value that is not missing
    distinct: int                 # distinct valid values
    labels: dict                  # valid code → value label (codes that are not missing)
    missing_codes: list           # user-missing codes of the file + codes labelled as no answer
    integer: bool = False         # every valid value a whole number
    vmin: float | None = None
    vmax: float | None = None
    share_in: dict = field(default_factory=dict)   # (lo, hi) → share of valid values inside
    unique: bool = False          # a value in every row, none repeated
    constant: bool = False
    labelled_share: float = 0.0   # share of the distinct valid values present that carry a value label

    @property
    def labelled_present(self) -> bool:
        """Value labels on the values (more than a top code such as 99 «99 and older»)."""
        return self.labelled_share > 0.2
    values: list = field(default_factory=list)     # distinct valid texts (text columns, first 200)
    many_values: bool = False                      # more than 200 distinct texts

    @property
    def text(self) -> str:
        return _norm(f"{self.name} {self.label}")

    @property
    def coverage(self) -> float:
        return self.n_valid / self.n if self.n else 0.0

    def hint(self, key: str) -> bool:
        return bool(re.search(_KW[key], self.text))

    @property
    def other_person(self) -> bool:
        return bool(_OTHER_PERSON.search(_norm(self.label)))

    def inside(self, lo, hi) -> float:
        return self.share_in.get((lo, hi), 0.0)

    @property
    def label_texts(self) -> list[str]:
        """Value labels, or for a text column without labels its distinct texts (if ≤ 200)."""
        if self.labels:
            return list(self.labels.values())
        return [] if self.many_values else list(self.values)

    @property
    def is_scale(self) -> bool:
        """A rating or agreement scale: labels that are only numbers, or scale wordings."""
        labs = [str(x).strip() for x in self.labels.values()]
        if len(labs) < 3:
            return False
        numeric = sum(bool(re.fullmatch(r"[-+]?\d+([.,]\d+)?", x)) for x in labs)
        wordy = sum(bool(_SCALE_WORDS.search(_norm(x))) for x in labs)
        return numeric / len(labs) >= 0.4 or wordy / len(labs) >= 0.5


def profile_columns(wave, crosswalks) -> list[Profile]:
    """A :class:`Profile` per column of a RawWave (one ``value_counts`` per column)."""
    import numpy as np
    import pandas as pd

    miss_cw = crosswalks["missing"]
    data = wave.data
    n = len(data)
    out = []
    for pos, col in enumerate(data.columns):
        s = data[col]
        m = wave.meta.get(col)
        labels_all = dict(m.value_labels) if m is not None and m.value_labels else {}
        missing = list(m.missing_values) if m is not None else []
        for k, lab in labels_all.items():
            if miss_cw.lookup(lab) is not None and k not in missing:
                missing.append(k)
        if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
            kind = "date"
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            kind = "numeric"
        else:
            kind = "text"
        user = m.is_user_missing(s) if m is not None and (m.missing_values or m.missing_ranges) else \
            pd.Series(False, index=s.index)
        valid = s[~user.to_numpy() & s.notna().to_numpy()]
        if kind == "text":
            valid = valid.astype(str).str.strip()
            valid = valid[valid.ne("")]
        if kind == "text" and len(valid) and valid.nunique() <= 200:
            missing += [v for v in valid.unique() if miss_cw.lookup(v) is not None and v not in missing]
        miss_keys = {_ident(k) for k in missing}
        if miss_keys and len(valid):      # vectorised: numbers by value, texts by normalised text
            if kind == "numeric":
                nums = [k[1] for k in miss_keys if k[0] == "n"]
                valid = valid[~valid.astype("float64").isin(nums).to_numpy()]
            else:
                texts = {k[1] for k in miss_keys if k[0] == "s"}
                nums = {k[1] for k in miss_keys if k[0] == "n"}
                u = pd.Series(valid.unique(), dtype=object)
                bad = u[[(_ident(x)[1] in (nums if _ident(x)[0] == "n" else texts)) for x in u]]
                valid = valid[~valid.isin(set(bad.tolist())).to_numpy()]
        labels = {k: v for k, v in labels_all.items() if _ident(k) not in miss_keys and
                  not (m is not None and _in_ranges(k, m.missing_ranges))}
        p = Profile(name=str(col), label=(m.label or "") if m is not None else "", position=pos, kind=kind,
                    n=n, n_valid=int(len(valid)), distinct=int(valid.nunique()), labels=labels,
                    missing_codes=missing)
        p.unique = bool(n > 1 and p.n_valid == n and p.distinct == n)
        p.constant = p.distinct <= 1
        if kind == "numeric" and len(valid):
            x = valid.astype("float64").to_numpy()
            p.integer = bool(np.all(np.floor(x) == x))
            p.vmin, p.vmax = float(x.min()), float(x.max())
            for lo, hi in ((14, 110), (0, 120), (1900, 2015)):
                p.share_in[(lo, hi)] = float(np.mean((x >= lo) & (x <= hi)))
            lab_ids = {_ident(k) for k in labels}
            ux = np.unique(x)
            p.labelled_share = sum(_ident(v) in lab_ids for v in ux) / len(ux) if lab_ids else 0.0
        elif kind == "text" and len(valid):
            u = valid.unique()
            p.values = [str(v) for v in u[:200]]
            p.many_values = len(u) > 200
            lab_ids = {_ident(k) for k in labels}
            p.labelled_share = sum(_ident(v) in lab_ids for v in u) / len(u) if lab_ids else 0.0
        out.append(p)
    return out


def _ident(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return ("n", float(v))
    try:
        import numpy as np

        if isinstance(v, (np.integer, np.floating)):
            return ("n", float(v))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, str):
        try:
            return ("n", float(v.strip()))
        except ValueError:
            return ("s", v.strip().casefold())
    return ("o", repr(v))


def _in_ranges(k, ranges) -> bool:
    try:
        f = float(k)
    except (TypeError, ValueError):
        return False
    return any(isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= f <= hi
               for lo, hi in ranges or [])


# ---- candidates ---------------------------------------------------------------------------------

@dataclass
class Candidate:
    """A column considered for a harmonised variable, with a confidence in [0, 1] and why."""

    column: str
    confidence: float
    reasons: list[str]

    def __str__(self) -> str:
        return f"{self.column} {self.confidence:.2f} ({'; '.join(self.reasons)})"


@dataclass
class Choice:
    """The outcome for one harmonised variable: the column used (or None: a TODO) and the
    candidates considered, best first."""

    variable: str
    column: str | None
    candidates: list[Candidate]
    note: str = ""

    @property
    def confidence(self) -> float | None:
        return self.candidates[0].confidence if self.column is not None and self.candidates else None


def _finish(score: float, reasons: list[str], p: Profile) -> tuple[float, list[str]]:
    if p.other_person:
        score *= 0.4
        reasons.append("label is about someone else")
    if p.coverage < 0.9:
        score *= 0.6 + 0.4 * p.coverage
        reasons.append(f"answered by {100 * p.coverage:.0f} %")
    return round(min(score, 1.0), 2), reasons


def _lab(p: Profile) -> str:
    return f"label «{p.label}»" if p.label else "no variable label"


def score_id(p: Profile):
    if not p.unique or p.kind == "date" or (p.kind == "numeric" and not p.integer):
        return None
    s, r = 0.5, ["unique per row"]
    if p.hint("id"):
        s += 0.35
        r.append(f"name/{_lab(p)}")
    if p.position == 0:
        s += 0.1
        r.append("first column")
    return _finish(s, r, p)


def score_weight(p: Profile):
    if p.kind != "numeric" or p.n_valid == 0 or p.constant or p.integer or (p.vmin or 0) <= 0 \
            or p.labelled_present:
        return None
    s, r = 0.35, [f"positive, not whole numbers ({p.vmin:.3g}–{p.vmax:.3g})"]
    if p.hint("weight"):
        s += 0.5
        r.append(_lab(p))
        if re.search(r"(design|base|базов|sampling|dweight)", p.text):
            s += 0.05
    return _finish(s, r, p)


def score_age(p: Profile):
    if p.kind != "numeric" or not p.integer or p.labelled_present or p.distinct < 3 \
            or p.inside(14, 110) < 0.95 or p.inside(0, 120) < 0.999:
        return None
    s, r = 0.45, [f"whole numbers {p.vmin:.0f}–{p.vmax:.0f}, " +
                  ("no value labels" if not p.labelled_share else "labels only on a few codes")]
    if p.hint("age"):
        s += 0.45
        r.append(_lab(p))
    return _finish(s, r, p)


def score_birth_year(p: Profile):
    if p.kind != "numeric" or not p.integer or p.labelled_present or p.distinct < 3 or p.inside(1900, 2015) < 0.98:
        return None
    s, r = 0.4, [f"whole numbers {p.vmin:.0f}–{p.vmax:.0f} (years)"]
    if p.hint("birth_year"):
        s += 0.5
        r.append(_lab(p))
    return _finish(s, r, p)


def _known(p: Profile, cw) -> tuple[float, dict]:
    texts = p.label_texts
    found = {t: cw.lookup(t) for t in texts}
    found = {t: c for t, c in found.items() if c is not None}
    return (len(found) / len(texts) if texts else 0.0), found


def score_sex(p: Profile, cws):
    if not p.label_texts or len(p.label_texts) > 6 or p.is_scale:
        return None
    share, found = _known(p, cws["sex"])
    if not {"male", "female"} <= set(found.values()):
        return None
    s, r = 0.5 + 0.3 * share, [f"value labels {'/'.join(list(found)[:3])}"]
    if p.hint("sex"):
        s += 0.15
        r.append(_lab(p))
    return _finish(s, r, p)


def score_education(p: Profile, cws):
    texts = p.label_texts
    hint = p.hint("education")
    if len(texts) < 3 or len(texts) > 60 or p.is_scale:
        wordy = any(_SCALE_WORDS.search(_norm(x)) for x in p.labels.values())
        if hint and p.kind == "numeric" and not wordy:     # years of schooling: considered, never used
            return 0.2, [f"{_lab(p)}, but numbers (years?), not levels"]
        return None
    share, found = _known(p, cws["education"])
    if share == 0 and not hint:
        return None
    s, r = 0.6 * share, [f"{len(found)} of {len(texts)} value labels are education levels"]
    if hint:
        s += 0.3
        r.append(_lab(p))
    if len(texts) >= 3:
        s += 0.1
    if p.hint("age") or re.search(r"\b(years?|лет|jahre)\b", _norm(p.label)):
        s *= 0.3
        r.append("about an age or years, not the level")
    return _finish(s, r, p)


def employment_labels(p: Profile, cws) -> tuple[dict, list]:
    """(label → category found in the crosswalk, labels that say 'working' without a status)."""
    _, found = _known(p, cws["employment"])
    working = [t for t in p.label_texts if t not in found and _WORKING.search(_norm(t))
               and not _NOT_WORKING.search(_norm(t))]
    return found, working


def score_employment(p: Profile, cws):
    texts = p.label_texts
    if len(texts) < 3 or len(texts) > 60 or p.is_scale:
        return None
    found, working = employment_labels(p, cws)
    not_employed = set(found.values()) & _NOT_EMPLOYED_CATS
    if sum(c != "other" for c in found.values()) + len(working) < 2:
        return None
    share = (len(found) + len(working)) / len(texts)
    s, r = 0.45 * share, [f"{len(found) + len(working)} of {len(texts)} value labels are employment statuses"]
    if len(not_employed) >= 3:
        s += 0.35
        r.append("covers " + ", ".join(sorted(not_employed)))
    elif len(not_employed) == 2:
        s += 0.25
        r.append("covers " + ", ".join(sorted(not_employed)))
    else:
        s *= 0.5
        r.append("no student/retired/unemployed answers: only the employed are asked (relation to the job?)")
    if p.hint("employment_status"):
        s += 0.2
        r.append(_lab(p))
    return _finish(s, r, p)


def score_country(p: Profile, cws):
    texts = p.label_texts or p.values      # typed answers: the first 200 distinct spellings
    if not texts or p.is_scale:
        return None
    found = {t: c for t in texts if (c := cws["country"].lookup(t)) is not None}
    share = len(found) / len(texts)
    # a yes/no question is not a country list, although «No» is Norway
    if len(found) < 2 and len(texts) < 3 or share < 0.5 or _is_yes_no(texts):
        return None
    s, r = 0.1 + 0.55 * share, [f"{len(found)} of {len(texts)} values/labels are countries"]
    if p.hint("country"):
        s += 0.3
        r.append(_lab(p))
    if _NOT_RESIDENCE.search(_norm(p.label)):
        s *= 0.3
        r.append("about birth/citizenship, not residence")
    return _finish(s, r, p)


_YES_NO = frozenset({"yes", "no", "да", "нет", "ja", "nein", "marked", "not marked", "y", "n"})


def _is_yes_no(texts) -> bool:
    return bool(texts) and sum(_norm(t) in _YES_NO for t in texts) >= max(1, len(texts) - 1)


def score_departure(p: Profile, parse_month):
    if p.kind == "text" and p.values:
        ok = sum(parse_month(v) is not None for v in p.values[:200]) / len(p.values[:200])
        if ok < 0.5:
            return None
        s, r = 0.5, [f"{100 * ok:.0f} % of the texts are months"]
    elif p.kind == "date" and not p.hint("birth_year"):
        s, r = 0.3, ["a date column"]
    elif p.kind == "numeric" and p.integer and p.hint("departure_date") and p.vmin is not None \
            and 1900 <= p.vmin and p.vmax <= 2100 and not re.search(r"(month|месяц|mes)", p.text):
        s, r = 0.45, [f"whole numbers {p.vmin:.0f}–{p.vmax:.0f} (years)"]
    else:
        return None
    if p.hint("departure_date"):
        s += 0.4
        r.append(_lab(p))
    return round(min(s, 1.0), 2), r


def score_interview_date(p: Profile):
    if p.kind != "date" or p.hint("birth_year"):
        return None
    s, r = 0.4, ["a date column"]
    if p.hint("interview_date"):
        s += 0.45
        r.append(_lab(p))
    return round(min(s, 1.0), 2), r


def choose(variable: str, scored: list[tuple[str, tuple]], taken: set[str]) -> Choice:
    """The best candidate if it is confident and clearly ahead; else a TODO with the candidates."""
    cands = sorted((Candidate(col, sc[0], sc[1]) for col, sc in scored if sc is not None),
                   key=lambda c: -c.confidence)
    free = [c for c in cands if c.column not in taken]
    if not free or free[0].confidence < PICK:
        return Choice(variable, None, cands[:SHOWN],
                      "no column is clearly it" if cands else "no column looks like it")
    best = free[0]
    gap = best.confidence - free[1].confidence if len(free) > 1 else 1.0
    if gap < TIE or (best.confidence < SURE and gap < MARGIN):
        return Choice(variable, None, cands[:SHOWN],
                      f"{best.column} and {free[1].column} are about as likely")
    return Choice(variable, best.column, [best] + [c for c in cands if c is not best][:SHOWN - 1])


def find_columns(wave, crosswalks) -> tuple[dict[str, Choice], list[Profile]]:
    """``{variable: Choice}`` for id, weight, sex, age, birth_year, education,
    employment_status, country, departure_date, interview_date."""
    from .transforms import parse_month

    profiles = profile_columns(wave, crosswalks)
    taken: set[str] = set()
    out: dict[str, Choice] = {}
    order = [
        ("id", score_id), ("weight", score_weight), ("sex", lambda p: score_sex(p, crosswalks)),
        ("age", score_age), ("birth_year", score_birth_year),
        ("education", lambda p: score_education(p, crosswalks)),
        ("employment_status", lambda p: score_employment(p, crosswalks)),
        ("country", lambda p: score_country(p, crosswalks)),
        ("departure_date", lambda p: score_departure(p, parse_month)),
        ("interview_date", score_interview_date),
    ]
    for var, fn in order:
        ch = choose(var, [(p.name, fn(p)) for p in profiles], taken)
        out[var] = ch
        if ch.column is not None:
            taken.add(ch.column)
    return out, profiles


# ---- employment from several columns --------------------------------------------------------------

@dataclass
class EmploymentRules:
    """Columns for employment status by rules: main activity, relation, number of employees."""

    main: str
    working_codes: list
    relation: str
    relation_codes: dict            # code → employee | own_account | employer | None (unknown)
    employees: str | None = None
    reasons: list = field(default_factory=list)


def find_employment_rules(wave, choice: Choice, profiles: list[Profile], crosswalks) -> EmploymentRules | None:
    """When the main-activity column's «paid work» answer names no status, the relation
    question (employee / self-employed) and the number of employees complete it."""
    if choice.column is None:
        return None
    by_name = {p.name: p for p in profiles}
    main = by_name[choice.column]
    _, working = employment_labels(main, crosswalks)
    if not working or not main.labels:
        return None
    working_codes = [k for k, v in main.labels.items() if v in working]
    best = None
    for p in profiles:
        if p.name == main.name or not p.labels or p.other_person or p.is_scale:
            continue
        found, _ = employment_labels(p, crosswalks)
        cats = set(found.values())
        if "employee" in cats and cats & {"own_account", "employer"} and not cats & _NOT_EMPLOYED_CATS:
            score = len(found) / len(p.labels) + 0.5 * p.coverage
            if best is None or score > best[0]:
                best = (score, p, found)
    if best is None:
        return None
    _, rel, found = best
    codes = {k: found.get(v) for k, v in rel.labels.items()}
    emp = None
    for p in profiles:
        if p.kind == "numeric" and p.integer and not p.other_person and p.hint("employees") \
                and (p.vmin or 0) >= 0 and not p.labelled_present and p.name not in (main.name, rel.name):
            emp = p.name
            break
    return EmploymentRules(main.name, working_codes, rel.name, codes, emp)


# ---- the YAML text ------------------------------------------------------------------------------

def _q(value) -> str:
    """A YAML scalar for a key or value (numbers plain, text double-quoted)."""
    import json

    if isinstance(value, bool):
        return json.dumps(str(value))
    if isinstance(value, (int, float)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    try:
        import numpy as np

        if isinstance(value, (np.integer, np.floating)):
            return _q(float(value))
    except ImportError:  # pragma: no cover
        pass
    return json.dumps(str(value), ensure_ascii=False)


def _comment(text) -> str:
    return " ".join(str(text).split())


def _wave_id(path: str, wave_id: str | None) -> tuple[str, bool]:
    """(wave id, sure): --wave or the project's id; else a date at the start of the file name
    (2022-03_wave1.sav → 2022-03); else the file name itself, marked TODO."""
    if wave_id:
        return str(wave_id), True
    stem = Path(path).stem
    m = re.match(r"^(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:[_\-. ]|$)", stem)
    if m:
        return m.group(1), True
    return stem, False


@dataclass
class Draft:
    """A codebook draft: the YAML ``text`` and the ``choices`` behind it."""

    text: str
    choices: dict[str, Choice]
    employment_rules: EmploymentRules | None = None

    def candidates(self):
        """A DataFrame: variable, column, confidence, used, reasons — every candidate considered."""
        import pandas as pd

        rows = []
        for var, ch in self.choices.items():
            for c in ch.candidates:
                rows.append({"variable": var, "column": c.column, "confidence": c.confidence,
                             "used": c.column == ch.column, "reasons": "; ".join(c.reasons)})
            if not ch.candidates:
                rows.append({"variable": var, "column": None, "confidence": None, "used": False,
                             "reasons": ch.note})
        return pd.DataFrame(rows, columns=["variable", "column", "confidence", "used", "reasons"])

    @property
    def todos(self) -> int:
        return sum("TODO" in ln for ln in self.text.splitlines() if not ln.startswith("# Check every line"))


def draft_codebook(wave, *, wave_id: str | None = None, file: str | None = None, crosswalks=None,
                   max_values: int = 60) -> Draft:
    """A commented codebook draft for a RawWave (see the module docstring)."""
    from . import crosswalks as _cw

    cws = crosswalks or _cw.load()
    data, meta = wave.data, wave.meta
    path = file or wave.source.path
    choices, profiles = find_columns(wave, cws)
    by_name = {p.name: p for p in profiles}
    rules = find_employment_rules(wave, choices["employment_status"], profiles, cws)
    wid, wid_sure = _wave_id(path, wave_id)

    counts_cache: dict[str, dict] = {}

    def counts(col):
        if col not in counts_cache:
            import numpy as np

            c: dict = {}
            for k, n in data[col].value_counts(dropna=True).items():
                kk = float(k) if isinstance(k, (int, float, np.integer, np.floating)) else str(k).strip()
                c[kk] = c.get(kk, 0) + int(n)
            counts_cache[col] = c
        return counts_cache[col]

    def n_of(col, k):
        kk = float(k) if isinstance(k, (int, float)) else str(k).strip()
        return counts(col).get(kk, 0)

    def values_of(col):
        """[(value, label or None, count)] — value labels first, then other observed values."""
        m = meta.get(col)
        labels = dict(m.value_labels) if m and m.value_labels else {}
        out, seen = [], set()
        for k, lab in labels.items():
            kk = float(k) if isinstance(k, (int, float)) else str(k)
            out.append((k, lab, n_of(col, k)))
            seen.add(kk)
        for kk, c in sorted(counts(col).items(), key=lambda kv: -kv[1]):
            if kk not in seen and not (isinstance(kk, str) and not kk):
                out.append((kk, None, c))
        return out

    def missing_line(col):
        miss = by_name[col].missing_codes
        return [f"    missing: [{', '.join(_q(x) for x in miss)}]"] if miss else []

    def header(var, ch: Choice):
        out = []
        if ch.column is not None:
            c = ch.candidates[0]
            out.append(f"  # {var} ← {c.column}: confidence {c.confidence:.2f} ({_comment('; '.join(c.reasons))})")
            others = [x for x in ch.candidates if x.column != ch.column]
        else:
            out.append(f"  # {var}: TODO — {ch.note}")
            others = ch.candidates
        for x in others:
            out.append(f"  #   {'candidate' if ch.column is None else 'also considered'}: "
                       f"{_comment(str(x))}")
        return out

    def source_line(col):
        m = meta.get(col)
        lab = f"  # «{_comment(m.label)}»" if m is not None and m.label else ""
        return f"    source: {_q(col)}{lab}"

    def cat_block(var, col, cwname):
        vals = values_of(col)
        miss_ids = {_ident(x) for x in by_name[col].missing_codes}
        use_cw = var == "country" or len(vals) > max_values
        body, mapped = [], 0
        for k, lab, c in vals:
            if _ident(k) in miss_ids:
                continue
            text = lab if lab is not None else (k if isinstance(k, str) else None)
            code = cws[cwname].lookup(text) if text is not None else None
            note = f"«{_comment(lab)}» " if lab is not None else ""
            if code is not None:
                mapped += 1
                if not use_cw:
                    extra = cws[cwname].note(text)
                    body.append(f"      {_q(k)}: {code:<22} # {note}n={c}" + (f"; {_comment(extra)}" if extra else ""))
            elif cwname == "employment" and text is not None and _WORKING.search(_norm(text)) \
                    and not _NOT_WORKING.search(_norm(text)):
                body.append(f"      # {_q(k)}: TODO             # {note}n={c} — working, but employee, employer or "
                            "own account is not said (another question? see 'rules' in docs/codebook.md)")
            else:
                body.append(f"      # {_q(k)}: TODO             # {note}n={c} — not in the {cwname} crosswalk")
        lines = [f"  {var}:", source_line(col)]
        if use_cw:
            lines.append(f"    crosswalk: {cwname}")
        if not use_cw or body:
            lines.append("    map:" if any(not b.lstrip().startswith("#") for b in body) else "    map: {}")
            lines += body
        lines += missing_line(col)
        if mapped == 0:      # nothing maps: written commented out, so that the draft loads
            return [f"  # TODO: none of the codes of {col!r} is in the {cwname} crosswalk — map them and "
                    "remove the '#' below"] + ["  # " + ln[2:] if not ln.lstrip().startswith("#") else
                                               "  #" + ln[1:] for ln in lines]
        return lines

    def rules_block(r: EmploymentRules):
        main_m = meta.get(r.main)
        rel_m = meta.get(r.relation)
        srcs = [r.main, r.relation] + ([r.employees] if r.employees else [])
        out = ["  employment_status:",
               f"    # from {len(srcs)} columns by rules (docs/codebook.md, 'Rules over several columns'): the main",
               f"    # activity {r.main!r} decides first; for its 'working' answer the relation {r.relation!r}"
               + (f" and the number of employees {r.employees!r}." if r.employees else "."),
               "    # CHECK every rule; a row that no rule matches is reported as unmapped.",
               f"    source: [{', '.join(_q(c) for c in srcs)}]",
               "    rules:",
               f"      - when: {{{r.main}: missing}}", "        to: missing"]
        work = r.working_codes[0] if len(r.working_codes) == 1 else r.working_codes
        wq = _q(work) if not isinstance(work, list) else "[" + ", ".join(_q(x) for x in work) + "]"
        wlab = "; ".join(_comment(main_m.value_labels.get(k, "")) for k in r.working_codes) if main_m else ""
        for code, cat in r.relation_codes.items():
            lab = _comment(rel_m.value_labels.get(code, "")) if rel_m else ""
            if _ident(code) in {_ident(x) for x in by_name[r.relation].missing_codes}:
                continue
            n = int(((data[r.main].isin(r.working_codes)) & (data[r.relation] == code)).sum())
            if cat == "employee" or cat == "employer":
                out += [f"      - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}}}   # «{wlab}», «{lab}» n={n}",
                        f"        to: {cat}"]
            elif cat == "own_account" and r.employees:
                out += [f"      - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}, {r.employees}: 0}}"
                        f"   # «{lab}», no employees", "        to: own_account",
                        f"      - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}, {r.employees}: \">= 1\"}}"
                        f"   # «{lab}» with employees", "        to: employer",
                        f"      - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}, {r.employees}: missing}}"
                        f"   # number of employees unknown", "        to: missing"]
            elif cat == "own_account":
                out += [f"      - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}}}   # «{lab}» n={n} — TODO: "
                        "employer or own account? (no number-of-employees column found)",
                        "        to: own_account"]
            else:
                out.append(f"      # - when: {{{r.main}: {wq}, {r.relation}: {_q(code)}}}   # TODO «{lab}» n={n}: "
                           "which category?")
        out += [f"      - when: {{{r.main}: {wq}, {r.relation}: missing}}   # working, relation unknown",
                "        to: missing"]
        mvals = values_of(r.main)
        miss_ids = {_ident(x) for x in by_name[r.main].missing_codes} | {_ident(x) for x in r.working_codes}
        for k, lab, c in mvals:
            if _ident(k) in miss_ids:
                continue
            text = lab if lab is not None else (k if isinstance(k, str) else None)
            code = cws["employment"].lookup(text) if text is not None else None
            note = f"«{_comment(lab)}» n={c}" if lab is not None else f"n={c}"
            if code is None:
                out.append(f"      # - when: {{{r.main}: {_q(k)}}}   # TODO {note} — not in the employment crosswalk")
            else:
                out += [f"      - when: {{{r.main}: {_q(k)}}}   # {note}", f"        to: {code}"]
        return out

    lines = [
        f"# Codebook DRAFT for {Path(path).name}, written by `diaspora-survey codebook draft`.",
        "# Check every line; '# TODO' marks what the draft could not decide. Columns were picked by",
        "# their value labels, value ranges and variable labels; each variable says which column",
        "# was used, with what confidence, and which others were considered. A code that is not",
        "# mapped is reported as unmapped by `diaspora-survey codebook check` and `harmonise`.",
        "# Format: docs/codebook.md",
    ]
    if getattr(wave.source, "file_label", None):
        lines.append(f"# File label: {_comment(wave.source.file_label)}")
    lines.append(f"wave: {_q(wid)}" + ("" if wid_sure else "      # TODO wave id: must equal the id in "
                                                           "diaspora-survey.toml (e.g. 2024-05)"))
    lines.append(f"file: {_q(str(path))}")
    ch = choices["id"]
    if ch.column is not None:
        lines.append(f"id: {_q(ch.column)}" + f"   # confidence {ch.confidence:.2f}: {_comment('; '.join(ch.candidates[0].reasons))}")
    else:
        lines.append(f"# id: COLUMN            # TODO respondent id column (default: row number) — {ch.note}"
                     + (f"; candidates: {', '.join(c.column for c in ch.candidates)}" if ch.candidates else ""))
    ch = choices["weight"]
    if ch.column is not None:
        lines += ["design:", f"  weight: {_q(ch.column)}   # confidence {ch.confidence:.2f}: "
                             f"{_comment('; '.join(ch.candidates[0].reasons))}"]
    elif ch.candidates:
        lines.append(f"# design: {{weight: COLUMN}}   # TODO weight? candidates: "
                     f"{', '.join(str(c) for c in ch.candidates)}")
    adult_note = ""
    age_ch = choices["age"]
    if age_ch.column is not None and (by_name[age_ch.column].vmin or 0) < 18:
        adult_note = f" (the file has ages from {by_name[age_ch.column].vmin:.0f})"
    has_age = age_ch.column is not None or (choices["birth_year"].column is not None
                                            and choices["interview_date"].column is not None)
    if has_age:
        lines += ["", "eligibility:", f"  - age >= 18              # adults only{adult_note}; remove if not wanted"]
    else:
        lines += ["", "# eligibility:            # TODO once age is mapped, e.g. adults only:", "#   - age >= 18"]
    lines += ["", "variables:"]
    used: set[str] = set()
    blocks = []
    for var, cwname in (("sex", "sex"), ("education", "education"), ("employment_status", "employment"),
                        ("country", "country")):
        ch = choices[var]
        blk = header(var, ch)
        if var == "employment_status" and rules is not None:
            blk += rules_block(rules)
            used |= {rules.main, rules.relation} | ({rules.employees} if rules.employees else set())
        elif ch.column is not None:
            blk += cat_block(var, ch.column, cwname)
            used.add(ch.column)
        blocks.append(blk)
    age_blk = header("age", age_ch)
    by_ch, date_ch = choices["birth_year"], choices["interview_date"]
    if age_ch.column is not None:
        col = age_ch.column
        age_blk += ["  age:", source_line(col), "    valid_range: [14, 110]"] + missing_line(col)
        used.add(col)
    elif by_ch.column is not None:
        col = by_ch.column
        age_blk += header("birth_year", by_ch)
        if date_ch.column is not None:
            age_blk += ["  age:", "    transform: age_from_birth_year",
                        f"    source: [{_q(col)}, {_q(date_ch.column)}]   # birth year, interview date",
                        "    age_rule: midyear", "    valid_range: [14, 110]"]
            used |= {col, date_ch.column}
        else:
            age_blk += ["  # TODO: the interview date is needed for the age; add it and remove the '#' below",
                        "  # age:", "  #   transform: age_from_birth_year", f"  #   source: {_q(col)}",
                        "  #   interview_date: YYYY-MM-DD", "  #   valid_range: [14, 110]"]
    blocks.append(age_blk)
    dep = choices["departure_date"]
    dep_blk = header("departure_date", dep)
    month = None
    if dep.column is not None and by_name[dep.column].kind == "numeric":
        month = next((p.name for p in profiles if p.name != dep.column and p.kind == "numeric" and p.integer
                      and p.hint("departure_date") and re.search(r"(month|месяц|mes)", p.text)
                      and p.vmin is not None and 1 <= p.vmin and p.vmax <= 12), None)
    if dep.column is not None and by_name[dep.column].kind == "numeric" and month is None:
        dep_blk += [f"  # TODO: {dep.column!r} holds years; departure_date needs the month too "
                    "(transform: year_month, source: [YEAR, MONTH])"]
    elif month is not None:
        miss = sorted({*map(str, by_name[dep.column].missing_codes)} | {*map(str, by_name[month].missing_codes)})
        dep_blk += ["  departure_date:", "    transform: year_month",
                    f"    source: [{_q(dep.column)}, {_q(month)}]   # year, month"]
        if miss:
            codes = [float(x) if re.fullmatch(r"-?\d+(\.\d+)?", x) else x for x in miss]
            dep_blk.append(f"    missing: [{', '.join(_q(x) for x in codes)}]")
        used |= {dep.column, month}
    elif dep.column is not None:
        dep_blk += ["  departure_date:", source_line(dep.column),
                    "    transform: " + ("month" if by_name[dep.column].kind == "text" else "date")]
        used.add(dep.column)
    blocks.append(dep_blk)
    if not any(ln.startswith("  ") and not ln.lstrip().startswith("#") for b in blocks for ln in b):
        lines[-1] = "variables: {}           # TODO no harmonised variable recognised: add them (docs/codebook.md)"
    for b in blocks:
        lines += b + [""]
    for var in ("id", "weight"):
        if choices[var].column:
            used.add(choices[var].column)
    rest = [c for c in data.columns if c not in used]
    if rest:
        lines.append("# Columns not used (add a variable with 'custom: true' and a 'type' to keep one):")
        for c in rest:
            m = meta.get(c)
            lab = f" «{_comment(m.label)}»" if m is not None and m.label else ""
            lines.append(f"#   {c}{lab}")
    return Draft("\n".join(lines).rstrip() + "\n", choices, rules)


def draft_yaml(wave, *, wave_id: str | None = None, file: str | None = None, crosswalks=None,
               max_values: int = 60) -> str:
    """The draft's YAML text (see :func:`draft_codebook`)."""
    return draft_codebook(wave, wave_id=wave_id, file=file, crosswalks=crosswalks, max_values=max_values).text


__all__ = ["draft_codebook", "draft_yaml", "Draft", "Choice", "Candidate", "find_columns", "profile_columns",
           "PICK", "MARGIN", "SURE", "TIE"]
