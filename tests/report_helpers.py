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
    from diaspora_survey.harmonise.schema import derive_age_group

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
    """Rows shaped like ``diaspora_survey.compare.comparison.compare`` output (``by`` = "" overall)."""
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
        waves=[WaveInfo("w1", "raw/w1.sav", "codebooks/w1.yaml", "sav", "utf-8",
                        n_read=370, n_excluded=10, n_kept=360),
               WaveInfo("w2", "raw/w2.csv", "codebooks/w2.yaml", "csv", "cp1251",
                        n_read=245, n_excluded=5, n_kept=240)],
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


# ---- a pure-Python PDF text reader (CI has no poppler) ----------------------------------
#
# Enough of PDF for what reportlab writes: indirect objects with direct /Length streams
# (ASCII85 and/or Flate), TrueType subset fonts with a /ToUnicode CMap, and text drawn
# with Tf / Tj / TJ / ' / ". Returns one string per page, a line per positioning operator.

def _pdf_objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    import re

    objs: dict[int, tuple[bytes, bytes | None]] = {}
    for m in re.finditer(rb"(\d+) 0 obj\s*", data):
        start = m.end()
        stream_at = data.find(b"stream", start)
        end_at = data.find(b"endobj", start)
        if 0 <= stream_at < end_at:
            head = data[start:stream_at]
            length = int(re.search(rb"/Length (\d+)", head).group(1))
            body_start = stream_at + len(b"stream")
            body_start += 2 if data[body_start:body_start + 2] == b"\r\n" else 1
            objs[int(m.group(1))] = (head, _pdf_decode(head, data[body_start:body_start + length]))
        else:
            objs[int(m.group(1))] = (data[start:end_at], None)
    return objs


def _pdf_decode(head: bytes, body: bytes) -> bytes:
    import base64
    import re
    import zlib

    m = re.search(rb"/Filter\s*(\[[^\]]*\]|/\w+)", head)
    filters = re.findall(rb"/(\w+)", m.group(1)) if m else []
    for f in filters:
        if f == b"ASCII85Decode":
            body = base64.a85decode(body.strip().removesuffix(b"~>").removeprefix(b"<~"))
        elif f == b"FlateDecode":
            body = zlib.decompress(body)
        else:            # images (DCT …): not text
            return b""
    return body


def _pdf_cmap(stream: bytes) -> dict[int, str]:
    import re

    out: dict[int, str] = {}

    def u(hexs: bytes) -> str:
        h = hexs.decode()
        return "".join(chr(int(h[i:i + 4], 16)) for i in range(0, len(h), 4))

    for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = u(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", stream, re.S):
        for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>",
                                      block):
            base = int(dst, 16)
            for i, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                out[code] = chr(base + i)
    return out


def _pdf_string(tok: bytes) -> bytes:
    if tok.startswith(b"<"):
        return bytes.fromhex(tok[1:-1].decode())
    s, out, i = tok[1:-1], bytearray(), 0
    esc = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    while i < len(s):
        c = s[i]
        if c == 0x5C and i + 1 < len(s):          # backslash
            n = s[i + 1]
            if n in esc:
                out.append(esc[n]); i += 2
            elif 0x30 <= n <= 0x37:
                j = i + 1
                while j < len(s) and j < i + 4 and 0x30 <= s[j] <= 0x37:
                    j += 1
                out.append(int(s[i + 1:j], 8) & 0xFF); i = j
            elif n in (10, 13):
                i += 2
            else:
                out.append(n); i += 2
        else:
            out.append(c); i += 1
    return bytes(out)


def pdf_pages_text(data: bytes) -> list[str]:
    """The text of each page of a reportlab PDF, decoded through the fonts' ToUnicode maps."""
    import re

    objs = _pdf_objects(data)
    fonts: dict[bytes, dict[int, str]] = {}
    for head, _ in objs.values():
        if b"/Type /Font" in head:
            name = re.search(rb"/Name /(\S+)", head)
            tu = re.search(rb"/ToUnicode (\d+) 0 R", head)
            if name:
                fonts[name.group(1)] = _pdf_cmap(objs[int(tu.group(1))][1]) if tu else {}
    catalog = next(h for h, _ in objs.values() if b"/Type /Catalog" in h)
    pages_root = int(re.search(rb"/Pages (\d+) 0 R", catalog).group(1))

    def page_ids(n: int) -> list[int]:
        head = objs[n][0]
        if re.search(rb"/Type /Page\b(?!s)", head):
            return [n]
        kids = re.search(rb"/Kids \[([^\]]*)\]", head).group(1)
        return [p for k in re.findall(rb"(\d+) 0 R", kids) for p in page_ids(int(k))]

    token = re.compile(rb"/[^\s/\[\]()<>]+|\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>|\[|\]"
                       rb"|[A-Za-z'\"*]+|[-+]?[\d.]+", re.S)
    pages = []
    for pid in page_ids(pages_root):
        head = objs[pid][0]
        refs = re.search(rb"/Contents (\[[^\]]*\]|\d+ 0 R)", head).group(1)
        stream = b"\n".join(objs[int(r)][1] or b"" for r in re.findall(rb"(\d+) 0 R", refs))
        cmap: dict[int, str] = {}
        lines, line, operands = [], [], []
        for tok in (m.group(0) for m in token.finditer(stream)):
            if tok[:1] in (b"(", b"<") or tok in (b"[", b"]") or tok[:1] == b"/" \
                    or re.fullmatch(rb"[-+]?[\d.]+", tok):
                operands.append(tok)
                continue
            op = tok
            if op == b"Tf":
                cmap = fonts.get(operands[-2][1:], {}) if len(operands) >= 2 else {}
            elif op in (b"Tj", b"'", b'"', b"TJ"):
                if op in (b"'", b'"'):
                    lines.append("".join(line)); line = []
                for o in operands:
                    if o[:1] in (b"(", b"<"):
                        line.append("".join(cmap.get(b, chr(b)) for b in _pdf_string(o)))
            elif op in (b"T*", b"Td", b"TD", b"Tm", b"ET", b"BT"):
                if line:
                    lines.append("".join(line)); line = []
            operands = []
        if line:
            lines.append("".join(line))
        pages.append("\n".join(lines))
    return pages


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages_text(data))
