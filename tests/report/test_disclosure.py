"""Disclosure control across the whole report and the CLI (issue 11 items 5–8, issue 15 item 10).

The attack tests build the example report (and a small-cell project generated with the
example generator) and attack every published count with the three methods of issue 11
item 6, independently of :mod:`diaspora_survey.report.disclosure`'s own audit:

1. wave size minus the visible cells of a distribution;
2. pooled minus by-wave (any published set minus a published subset of it);
3. across tables: exact linear combinations of *all* published counts (least squares on
   the respondent-level incidence matrix, a different solver from the module's).
"""
from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diaspora_survey.report import disclosure as D
from diaspora_survey.report.tables import SUPPRESSED, Column, ReportTable, export_rows

ROOT = Path(__file__).resolve().parents[2]


def _report(root: Path, weighted: bool = True):
    from diaspora_survey.pipeline import Pipeline
    from diaspora_survey.report.content import build_report
    from diaspora_survey.report.document import Chart, disclose_report

    p = Pipeline(root)
    p.harmonise(write=False)
    if weighted:
        p.weight(write=False)
    else:   # a tiny sample cannot be raked to the example targets: unit weights
        p.data = p.data.assign(weight=1.0, weight_pooled=1.0)
    p.compare()
    rep = build_report(p.report_inputs())
    tables = [b if isinstance(b, ReportTable) else b.table for s in rep.sections
              for b in s.blocks if isinstance(b, (ReportTable, Chart))]
    return rep, tables, disclose_report(rep)


@pytest.fixture(scope="module")
def example():
    return _report(ROOT)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from diaspora_survey.example import generate

    d = tmp_path_factory.mktemp("small")
    shutil.copytree(ROOT / "codebooks", d / "codebooks")
    toml = (ROOT / "diaspora-survey.toml").read_text(encoding="utf-8")
    # the cross-sectional waves only: a 160-respondent baseline is too small to weight the panel
    (d / "diaspora-survey.toml").write_text(toml.split("\n[panel]")[0] + "\n", encoding="utf-8")
    generate(d / "raw", sizes=(160, 260, 120))
    return _report(d, weighted=False)


def _published(tables, disclosed):
    """(published sets, hidden primary sets, hidden sets) from the disclosed tables: a
    count is published when its disclosed value is shown."""
    shown = {t.id: t for t in disclosed.tables() + [c.table for c in disclosed.charts()]}
    pub, primary, hidden = [], [], []
    for t in tables:
        data = t.data.reset_index(drop=True)
        dt = shown[t.id]
        for c in t.columns:
            mk = D.members_column(c.key)
            if mk not in data.columns:
                continue
            vals = dt.values[c.key] if c.key in dt.values.columns else None
            for i, s in enumerate(data[mk]):
                if s is None or vals is None:
                    continue
                (pub if pd.notna(vals.iloc[i]) else hidden).append(np.asarray(s))
        # the governing counts (n_cell) are published through the estimates they govern
        for nk in {t.n_col} | {c.n_key for c in t.columns if c.n_key}:
            mk = D.members_column(nk) if nk else None
            if not mk or mk not in data.columns or any(c.key == nk for c in t.columns):
                continue
            for i, s in enumerate(data[mk]):
                if s is None:
                    continue
                sup = dt.values["suppressed"].iloc[i]
                (hidden if sup else pub).append(np.asarray(s))
        for nk in {t.n_col} | {c.n_key for c in t.columns if c.n_key}:
            mk = D.members_column(nk) if nk else None
            if not mk or mk not in data.columns:
                continue
            n = pd.to_numeric(data[nk], errors="coerce")
            for i, s in enumerate(data[mk]):
                if s is not None and dt.values["suppression"].iloc[i] == "primary" \
                        and n.iloc[i] > 0 and n.iloc[i] < disclosed.min_cell_size:
                    primary.append(np.asarray(s))
    return pub, primary, hidden


def _attack(tables, disclosed):
    """Recovered hidden small cells by the three methods; returns (attacks, recovered)."""
    k = disclosed.min_cell_size
    pub, primary, hidden = _published(tables, disclosed)
    keyset = {tuple(np.sort(s)) for s in pub}
    attacks, recovered = 0, []
    protected = set(np.concatenate(primary).tolist()) if primary else set()
    sets = [set(s.tolist()) for s in pub]
    published = {frozenset(x) for x in sets}

    prim_sets = [set(x.tolist()) for x in primary]

    def leak(rest):
        """The derived set is a suppressed small cell, or a small sum of suppressed small
        cells (and not something published anyway)."""
        if not (0 < len(rest) < k) or not rest <= protected:
            return False
        inside = [Q for Q in prim_sets if Q <= rest]
        if not inside or set().union(*inside) != rest:
            return False
        covered = set().union(*[Q for Q in sets if Q <= rest]) if sets else set()
        return covered != rest

    # method 1: a distribution's total (assumed known) minus its visible cells
    shown = {t.id: t for t in disclosed.tables() + [c.table for c in disclosed.charts()]}
    for t in tables:
        if t.complement_by is None:
            continue
        data, dt = t.data.reset_index(drop=True), shown[t.id]
        comp = [c for c in t.complement_by if c in data.columns]
        for c in t.columns:
            mk = D.members_column(c.key)
            if mk not in data.columns or c.key not in dt.values.columns:
                continue
            for _, g in data.groupby(comp, sort=False) if comp else [(None, data)]:
                cells = [set(np.asarray(data.at[i, mk]).tolist()) for i in g.index
                         if data.at[i, mk] is not None]
                if len(cells) < 2 or frozenset(set().union(*cells)) not in published:
                    continue       # the distribution's total is not published
                attacks += 1
                rest = set()
                for i in g.index:
                    if pd.isna(dt.values[c.key].iloc[i]) and data.at[i, mk] is not None:
                        rest |= set(np.asarray(data.at[i, mk]).tolist())
                if leak(rest):
                    recovered.append(("total minus visible", t.id, len(rest)))
    # method 2: pooled minus by-wave — any published set minus a published subset of it
    for P in sets:
        for Q in sets:
            if Q < P:
                attacks += 1
                if leak(P - Q):
                    recovered.append(("nested difference", len(P - Q)))
    # method 3: exact linear combinations over respondents (atoms)
    allsets = pub + primary
    size = 1 + max(int(s.max()) for s in allsets if len(s))
    sig = np.zeros((size, len(allsets)), dtype=bool)
    for j, s in enumerate(allsets):
        sig[s, j] = True
    _, atom = np.unique(np.packbits(sig, axis=1), axis=0, return_inverse=True)
    atom = atom.ravel()
    na = atom.max() + 1
    A = np.zeros((len(pub), na))
    for j, s in enumerate(pub):
        A[j, atom[s]] = 1.0
    V = np.zeros((len(primary), na))
    for j, s in enumerate(primary):
        V[j, atom[s]] = 1.0
    if len(primary):
        X, *_ = np.linalg.lstsq(A.T, V.T, rcond=None)
        resid = np.linalg.norm(A.T @ X - V.T, axis=0)
        attacks += len(primary)
        recovered += [("linear combination", len(primary[j]))
                      for j in np.flatnonzero(resid < 1e-6)]
    return attacks, recovered


@pytest.mark.parametrize("which", ["example", "small"])
def test_attacks_on_every_table_recover_nothing(which, request):
    """Issue 11 item 6 / issue 15 item 10: nothing suppressed is recoverable by subtraction
    within or across tables (wave size − visible cells, pooled − by-wave, chains)."""
    rep, tables, disclosed = request.getfixturevalue(which)
    attacks, recovered = _attack(tables, disclosed)
    assert attacks > 100
    assert recovered == []
    audit = disclosed.audit
    assert audit.recovered == [] and audit.attacks > 0
    # every count table is linked to its respondents, but these with the per-table rule: the
    # harmonisation issues, the weight histogram and the panel section (its respondents are
    # linked pairs of waves, not rows of the report's data; docs/disclosure.md, "Limits")
    panel = {t for t in audit.unlinked if t.startswith(("panel_", "chart_panel_"))}
    assert set(audit.unlinked) - panel <= {"harmonisation_issues", "weights_distribution"}


def test_complements_hide_little_and_spare_headlines(example):
    """Issue 15 item 10: complementary cells are few and small; headline comparisons
    (all respondents, by wave) keep their estimates in the example report."""
    rep, tables, disclosed = example
    unlinked = set(disclosed.audit.unlinked)     # per-table rule only (counted apart)
    sec = [(t.id, v) for t in disclosed.tables() + [c.table for c in disclosed.charts()]
           for v in [t.values] if (v["suppression"] == "secondary").any() and t.id not in unlinked]
    n_sec = sum(int((v["suppression"] == "secondary").sum()) for _, v in sec)
    assert 0 < n_sec <= disclosed.audit.secondary <= 25
    for t in disclosed.tables():
        if t.id in ("compare_age_overall", "compare_age_wave", "compare_entrepreneurship_overall",
                    "compare_entrepreneurship_wave"):
            assert not t.values["suppressed"].any(), t.id


def test_every_format_shows_the_disclosed_cells_only(example, tmp_path):
    """The same cells in csv, xlsx, md and tex (the PDF renders the same DisclosedReport);
    no hidden count's value sits in a hidden cell of any format."""
    from openpyxl import load_workbook

    from diaspora_survey.report.formats import render

    rep, tables, disclosed = example
    files = {}
    for fmt in ("csv", "xlsx", "md", "tex"):
        files.update(render(disclosed, fmt, "r"))
    wb = load_workbook(io.BytesIO(files["r.xlsx"]))
    md = files["r.md"].decode()
    tex = files["r.tex"].decode()
    n_hidden = 0
    for t in disclosed.tables():
        header, rows = export_rows(t)
        got = list(csv.reader(io.StringIO(files[f"r_csv/{t.id}.csv"].decode())))
        assert len(got) == len(rows) + 1
        for r, g in zip(rows, got[1:]):
            for v, s in zip(r, g):
                if v == SUPPRESSED:
                    n_hidden += 1
                    assert s == SUPPRESSED
        sheet = next(ws for ws in wb.worksheets if ws.cell(1, 1).value == t.title)
        cells = [c.value for row in sheet.iter_rows() for c in row]
        assert cells.count(SUPPRESSED) == sum(r.count(SUPPRESSED) for r in rows)
        for r in t.cells:
            if SUPPRESSED in r:
                assert r.count(SUPPRESSED) <= md.count(SUPPRESSED)
    assert n_hidden > 0 and tex.count(SUPPRESSED) >= n_hidden // 3


# ---- item 5: CLI estimate / compare ---------------------------------------------------

def test_suppress_estimates_hides_small_levels_and_a_complement():
    res = pd.DataFrame({"statistic": "proportion", "variable": "x", "level": list("abcd"),
                        "estimate": [0.5, 0.3, 0.17, 0.03], "se": 0.01, "n": 100})
    out = D.suppress_estimates(res.assign(n_cell=[50, 30, 17, 3]), cell_col="n_cell",
                               group_cols=["statistic", "variable"])
    assert out["suppression"].tolist() == ["", "", "secondary", "primary"]
    assert out.loc[3, ["estimate", "se", "n"]].isna().all()
    assert out.loc[0, "estimate"] == 0.5


def test_grouping_by_identifiers_or_many_values_is_refused():
    from diaspora_survey.errors import EstimationError

    df = pd.DataFrame({"resp_id": [f"r{i}" for i in range(200)], "code": np.arange(200),
                       "age": np.arange(200) % 80 + 18, "wave": ["a", "b"] * 100})
    for by, code in (("resp_id", "disclosure.identifier"), ("code", "disclosure.identifier"),
                     ("age", "disclosure.too_many_groups")):
        with pytest.raises(EstimationError) as e:
            D.check_grouping(df, [by], "data")
        assert e.value.code == code
    D.check_grouping(df, ["wave"], "data")
    with pytest.raises(EstimationError):
        D.check_grouping(df, ["age"], "--by", allowed=("wave", "country"))
    with pytest.raises(EstimationError):
        D.check_estimand(df, ["resp_id"], "data")


def _cli(args, cwd):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "diaspora_survey.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def weighted_data(tmp_path_factory):
    from diaspora_survey.pipeline import Pipeline

    p = Pipeline(ROOT)
    p.harmonise(write=False)
    p.weight(write=False)
    d = tmp_path_factory.mktemp("w")
    path = d / "w.parquet"
    p.data.to_parquet(path)
    return path


def test_estimate_cli_suppresses_small_cells_in_every_output(weighted_data):
    r = _cli(["estimate", str(weighted_data), "--proportion", "education", "--by", "wave",
              "--weights", "weight", "--csv"], weighted_data.parent)
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(io.StringIO(r.stdout))
    df = pd.read_parquet(weighted_data)
    counts = df.groupby(["wave", "education"], observed=True).size()
    small = [(str(w), str(c)) for (w, c), n in counts.items() if 0 < n < 10]
    assert small
    for w, c in small:
        row = out[(out["wave"].astype(str) == w) & (out["level"] == c)]
        assert row["estimate"].isna().all() and row["n"].isna().all()
    r = _cli(["estimate", str(weighted_data), "--mean", "age", "--by", "resp_id"],
             weighted_data.parent)
    assert r.returncode == 2 and "identifies respondents" in r.stderr
    r = _cli(["estimate", str(weighted_data), "--mean", "resp_id"], weighted_data.parent)
    assert r.returncode == 2


def test_compare_by_only_what_help_says(tmp_path):
    r = _cli(["compare", "--by", "resp_id", "--project", str(ROOT)], tmp_path)
    assert r.returncode == 2 and "cannot compare by 'resp_id'" in r.stderr


def test_report_refuses_compare_by_identifier(tmp_path):
    from diaspora_survey.errors import EstimationError
    from diaspora_survey.pipeline import Pipeline

    for name in ("raw", "codebooks"):
        shutil.copytree(ROOT / name, tmp_path / name)
    toml = (ROOT / "diaspora-survey.toml").read_text(encoding="utf-8")
    (tmp_path / "diaspora-survey.toml").write_text(
        toml.replace('by = ["wave", "country"]', 'by = ["resp_id"]'), encoding="utf-8")
    p = Pipeline(tmp_path)
    p.harmonise(write=False)
    p.weight(write=False)
    with pytest.raises(EstimationError):
        p.compare()


def test_project_cannot_lower_the_minimum_cell_size(tmp_path):
    from diaspora_survey.errors import DiasporaSurveyError
    from diaspora_survey.project import Project

    toml = (ROOT / "diaspora-survey.toml").read_text(encoding="utf-8")
    (tmp_path / "diaspora-survey.toml").write_text(
        toml.replace("min_cell_size = 10", "min_cell_size = 1"), encoding="utf-8")
    with pytest.raises(DiasporaSurveyError):
        Project.load(tmp_path)


# ---- item 7: free text ----------------------------------------------------------------

def test_free_text_is_masked():
    from diaspora_survey._util import mask_value

    secret = "Тбилиси ул Руставели 5 кв 12 Иван ПЕТРОВ"
    shown = mask_value(secret, 1)
    assert "Руставели" not in shown and "ПЕТРОВ" not in shown and "40 chars" in shown
    assert mask_value("Тбилиси", 200) == "Тбилиси"          # a common answer
    assert mask_value("7 «Другое»", 1) == "7 «Другое»"      # a code with its file label
    assert mask_value("12", 1) == "12"


def test_harmonise_messages_never_echo_free_text():
    from diaspora_survey.harmonise import Codebook, harmonise
    from diaspora_survey.io import read_wave

    import tempfile

    secret = "Тбилиси ул Руставели 5 кв 12 Иван ПЕТРОВ"
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "w.csv"
        rows = ["id;sex;country"] + [f"{i};1;Грузия" for i in range(30)] + [f"99;1;{secret}"]
        src.write_text("\n".join(rows) + "\n", encoding="utf-8")
        cb = Path(d) / "w.yaml"
        cb.write_text("wave: w\nid: id\nvariables:\n  sex:\n    source: sex\n    map: {1: male}\n"
                      "  country:\n    source: country\n    crosswalk: country\n", encoding="utf-8")
        try:
            h = harmonise(read_wave(src), Codebook.load(cb))
        except Exception as e:   # noqa: BLE001 - a codebook error must not echo either
            assert "Руставели" not in str(e)
            return
    text = " ".join(i.message for i in h.issues)
    assert "Руставели" not in text and "ПЕТРОВ" not in text
    assert any(i.kind == "unmapped" for i in h.issues)


# ---- item 8: injection ----------------------------------------------------------------

def _inject_report():
    from diaspora_survey.report.document import Report, Section, Text, disclose_report

    d = pd.DataFrame({"label": ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "@SUM(A1)",
                                "-2+3", "plain"], "n": [50, 60, 70, 80, 90]})
    t = ReportTable(id="t", title="=cmd|' /C calc'!A0", data=d,
                    columns=[Column("label", "Label", "text"), Column("n", "n", "int")],
                    cv_col=None, notes=["@note"])
    rep = Report(title="-title \x1b[31mred\x1b[0m", date="2024-01-01",
                 sections=[Section("S", [Text("![img](http://evil/x.png) <img src=x> [l](http://e)"), t])])
    return disclose_report(rep)


def test_xlsx_text_is_never_a_formula():
    from openpyxl import load_workbook

    from diaspora_survey.report.formats import render_xlsx

    data = render_xlsx(_inject_report())
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in z.read(name), name
    wb = load_workbook(io.BytesIO(data))
    vals = [c.value for ws in wb for row in ws.iter_rows() for c in row if c.value]
    assert "+1+1" in vals and all("\x1b" not in str(v) for v in vals)
    for ws in wb:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str):
                    assert c.data_type == "s"


def test_csv_text_is_prefixed_per_owasp():
    from diaspora_survey.report.formats import render_csv

    files = render_csv(_inject_report(), "c")
    rows = list(csv.reader(io.StringIO(files["c/t.csv"].decode())))
    labels = [r[0] for r in rows[1:]]
    assert labels[:4] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1+1", "'@SUM(A1)", "'-2+3"]
    assert labels[4] == "plain"
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)
    index = files["c/tables.csv"].decode()
    assert ",'=cmd" in index or "\"'=cmd" in index


def test_markdown_is_escaped_and_terminal_text_stripped():
    from diaspora_survey.report.formats import render_markdown

    import re

    md = render_markdown(_inject_report(), "ch").decode()
    assert "![img](http" not in md and "[l](http" not in md
    assert not re.search(r"(?<!\\)<img", md) and "\\<img" in md
    assert "\x1b" not in md
    assert D.strip_control("a\x1b[31mb\x1b[0m\x07c\u202ed") == "abcd"
    assert D.strip_control("line\nnext\ttab") == "line\nnext\ttab"
    assert D.spreadsheet_text("=1+1") == "'=1+1" and D.spreadsheet_text(3) == 3


def test_the_attack_finds_leaks_of_per_table_rules(example, monkeypatch):
    """The attacks are not vacuous: with only the old per-table complement rule (no
    report-wide secondary suppression) they recover suppressed cells of the example."""
    from diaspora_survey.report import document

    rep, tables, _ = example
    monkeypatch.setattr(D, "protect", lambda tables, k: ({}, D.AuditResult()))
    weak = document.disclose_report(rep)
    attacks, recovered = _attack(tables, weak)
    assert len(recovered) > 0


def test_weighting_decisions_never_name_a_small_group():
    """Console and report messages (weighting and attrition decisions) show counts below the
    minimum as "fewer than 10": ``other`` sex aged 45-49 with 2 respondents is a small group."""
    m = D.mask_small_counts("sex:age_group=other:45-49 is in the data but not in the targets "
                            "(2 respondents); country is missing (13 respondents); (0 rows)")
    assert "(2 respondents)" not in m and "(fewer than 10 respondents)" in m
    assert "(13 respondents)" in m and "(0 rows)" in m
    assert D.mask_small_counts("(1 respondent)", 10) == "(fewer than 10 respondents)"
