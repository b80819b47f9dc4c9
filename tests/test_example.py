"""The synthetic example waves: deterministic generator, committed files, SYNTHETIC marks."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from diaspora_survey import example
from diaspora_survey.example.__main__ import main as example_main


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    example.generate(a)
    example.generate(b)
    return a, b


def test_rerun_is_byte_identical(generated):
    a, b = generated
    for name in example.FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_committed_raw_files_match_the_generator(generated, repo_dir):
    a, _ = generated
    for name in example.FILES:
        assert (repo_dir / "raw" / name).read_bytes() == (a / name).read_bytes(), \
            f"raw/{name} is stale: run `python -m diaspora_survey.example raw`"


def test_spss_header_timestamp_is_fixed(generated):
    a, _ = generated
    for name in ("2022-03_wave1.sav", "2024-05_wave3.zsav", "2023-03_wave4_panel.sav"):
        head = (a / name).read_bytes()[:200]
        assert head[92:109] == example.FIXED_STAMP
    assert (a / "2024-05_wave3.zsav").read_bytes()[:4] == b"$FL3"


def test_every_file_says_synthetic(generated, repo_dir):
    a, _ = generated
    for name in ("2022-03_wave1.sav", "2024-05_wave3.zsav", "2023-03_wave4_panel.sav"):
        _, meta = pyreadstat.read_sav(str(a / name), metadataonly=True)
        assert meta.file_label.startswith("SYNTHETIC")
        assert any("SYNTHETIC" in n for n in meta.notes)
    df = pd.read_csv(a / "2022-11_wave2.csv", sep=";", encoding="cp1251", decimal=",")
    assert (df["synthetic"] == 1).all()
    readme = (repo_dir / "raw" / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme
    for name in example.FILES:
        assert name in readme


def test_wave1_spss_metadata(generated):
    a, _ = generated
    df, meta = pyreadstat.read_sav(str(a / "2022-03_wave1.sav"), user_missing=True)
    assert 1900 < len(df) <= 2000
    assert meta.column_names_to_labels["q1_pol"] == "Ваш пол"
    assert meta.variable_value_labels["q3_obraz"][98] == "Затрудняюсь ответить"
    assert meta.variable_value_labels["q3_obraz"][99] == "Отказ от ответа"
    assert {r["lo"] for r in meta.missing_ranges["q3_obraz"]} == {98.0, 99.0}
    assert (df["q3_obraz"] == 98).any()                     # user-missing codes kept as values
    assert meta.original_variable_types["data_intervyu"].startswith("DATE")
    assert df["q5_strana"].isin(list(example.W1_COUNTRY) + [99]).all()
    s = df["q6_mes_vyezda"]
    assert s.str.match(r"^\d{2}\.\d{4}$").any() and s.str.match(r"^\d{4}-\d{2}$").any()
    assert s.str.contains("март", case=False).any() and s.str.contains("марта").any()
    by = pd.to_numeric(df["q2_god_rozhd"])
    assert ((2022 - by) <= 17).sum() >= 5                   # some minors for the eligibility filter
    for labels in meta.variable_value_labels.values():
        assert all(len(v.encode("utf-8")) <= 120 for v in labels.values())   # SPSS limit, no truncation


def test_wave2_csv_format(generated):
    a, _ = generated
    raw = (a / "2022-11_wave2.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1251")
    header = text.splitlines()[0]
    assert header.split(";")[:3] == ["ID_resp", "data_zapolneniya", "pol"] and "\r\n" in text
    df = pd.read_csv(io.StringIO(text), sep=";", decimal=",", dtype={"vozrast": "Int64"})
    assert 4900 < len(df) <= 5000
    assert df["dohod_mes_usd"].dtype == float and (df["dohod_mes_usd"] % 1 != 0).any()
    assert set(df["obrazovanie"].dropna()) == {"Среднее общее или ниже", "Среднее профессиональное",
                                                "Неполное высшее", "Высшее", "Учёная степень",
                                                "Затрудняюсь ответить"}
    countries = set(df["strana_prozhivaniya"].dropna())
    assert {"Киргизия", "Кыргызстан", "Турция", "Турецкая Республика", "ОАЭ"} <= countries
    assert any(c != c.strip() for c in countries) and any(c.islower() for c in countries)
    assert {"Объединенные Арабские Эмираты", "Объединённые Арабские Эмираты"} <= countries


def test_wave3_zsav(generated):
    a, _ = generated
    df, meta = pyreadstat.read_sav(str(a / "2024-05_wave3.zsav"), user_missing=True)
    assert len(df) == 1500
    assert meta.variable_value_labels["sex"][2] == "Female"
    assert "wt_base" in df and abs(df["wt_base"].mean() - 1) < 0.01 and (df["wt_base"] > 0).all()
    eu = {"DE", "CY", "PL", "FR", "NL", "ES", "PT", "CZ", "FI", "LV", "LT", "EE", "BG", "IT", "AT", "SE", "BE",
          "IE", "GR"}
    assert {example.W3_COUNTRY[int(c)][0] for c in df["country"].unique()} <= eu


def test_latent_population_is_plausible_and_biased():
    rng = np.random.default_rng(7)
    pop = pd.DataFrame(example.latent_population(rng, 50_000))
    assert 32 <= pop["age"].median() <= 35
    higher = pop["education"].isin(["bachelor", "specialist", "master", "doctorate"]).mean()
    assert 0.75 <= higher <= 0.85
    ent = pop["employment"].isin(["employer", "own_account"])
    assert 0.20 <= ent.mean() <= 0.30
    assert pop.loc[ent, "age"].median() > pop.loc[~ent, "age"].median()   # entrepreneurs older
    young = pop["age"] < 23
    assert pop.loc[young, "employment"].eq("student").mean() > 0.3
    assert (pop["sex"] == "female").mean() > 0.55                           # selection bias
    assert pop["country"].isin(["GE", "AM"]).mean() > 0.4


def test_main_writes_into_a_folder(tmp_path, capsys):
    assert example_main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(example.FILES)
    assert "SYNTHETIC" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*"))   # no temporary files left


def test_committed_waves_have_the_published_shapes_and_the_bias(repo_dir):
    """The files themselves (not only the latent model): median age 32–35, 75–85 % higher
    education, 20–30 % employers or own-account workers (incl. freelancers), too many women,
    and — in the waves outside the EU — too many respondents in Georgia and Armenia."""
    import diaspora_survey as ds

    raw = repo_dir / "raw"
    w1 = ds.read_wave(raw / "2022-03_wave1.sav").data
    w2 = ds.read_wave(raw / "2022-11_wave2.csv").data
    w3 = ds.read_wave(raw / "2024-05_wave3.zsav").data

    def valid(s, missing):
        s = s.dropna()
        return s[~s.isin(missing)]

    ages = {"w1": (2022 - w1["q2_god_rozhd"].astype(float)).dropna(), "w2": w2["vozrast"].astype(float).dropna(),
            "w3": w3["age"].astype(float)}
    higher = {"w1": valid(w1["q3_obraz"], [98, 99]).isin([1, 2, 3, 4]).mean(),
              "w2": valid(w2["obrazovanie"], ["Затрудняюсь ответить"]).isin(["Высшее", "Учёная степень"]).mean(),
              "w3": valid(w3["educ"], [98, 99]).isin([6, 7, 8, 9]).mean()}
    ent = {"w1": valid(w1["q4_zanyat"], [98, 99]).isin([2, 3, 4]).mean(),
           "w2": valid(w2["status_zanyatosti"], ["Затрудняюсь ответить"]).isin(
               ["Собственный бизнес с сотрудниками", "Индивидуальный предприниматель / самозанятый"]).mean(),
           "w3": valid(w3["empl"], [98, 99]).isin([2, 3, 4]).mean()}
    female = {"w1": (valid(w1["q1_pol"], [99]) == 2).mean(),
              "w2": (valid(w2["pol"], ["Предпочитаю не отвечать"]) == "Женщина").mean(),
              "w3": (valid(w3["sex"], [99]) == 2).mean()}
    for w in ("w1", "w2", "w3"):
        assert 32 <= ages[w].median() <= 35, (w, ages[w].median())
        assert 0.75 <= higher[w] <= 0.85, (w, higher[w])
        assert 0.20 <= ent[w] <= 0.30, (w, ent[w])
        assert female[w] > 0.55, (w, female[w])   # Russian emigrants are about half women
    ge_am_1 = valid(w1["q5_strana"], [99]).isin([1, 2]).mean()
    c2 = w2["strana_prozhivaniya"].dropna().str.strip().str.lower()
    ge_am_2 = c2.str.contains("груз|армен").mean()
    assert ge_am_1 > 0.4 and ge_am_2 > 0.4
    assert len(w1) == 2000 and len(w2) == 5000 and len(w3) == 1500
