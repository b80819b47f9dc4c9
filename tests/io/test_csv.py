"""CSV detection: encodings (UTF-8, UTF-8 BOM, Windows-1251, KOI8-R, CP866, Latin-1),
separators, decimal comma, quoting, dates; ragged and undecodable files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import diaspora_survey as ds
from diaspora_survey.errors import InputFileError
from diaspora_survey.io.encoding import detect_encoding, iconv_name, normalise_encoding

ROWS = [
    ("1", "Женский", "Грузия", "Высшее (магистратура)", "1250,50", "34", "15.03.2022"),
    ("2", "Мужской", "Армения", "Среднее профессиональное", "980,00", "41", "01.10.2022"),
    ("3", "Женский", "Сербия", "Затрудняюсь ответить", "2100,75", "29", "20.09.2022"),
    ("4", "Мужской", "Казахстан", "Высшее (специалитет)", "1 500,25", "", "05.11.2023"),
    ("5", "Женский", "Турция", "Отказ от ответа", "", "52", "24.02.2022"),
]
HEADER = ("id", "пол", "страна", "образование", "доход", "возраст", "дата_отъезда")


def _write(path, enc, sep=";", rows=ROWS, header=HEADER, newline="\r\n"):
    text = newline.join(sep.join(r) for r in [header, *rows]) + newline
    path.write_bytes(text.encode(enc))
    return path


@pytest.mark.parametrize("enc,expected", [("cp1251", "cp1251"), ("koi8-r", "koi8-r"), ("cp866", "cp866"),
                                          ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig")])
def test_russian_csv_encodings_separator_decimal_comma(tmp_path, enc, expected):
    path = _write(tmp_path / "wave2.csv", enc)
    w = ds.read_wave(path)
    assert w.source.encoding == expected
    assert w.source.format == "csv"
    assert list(w.data.columns) == list(HEADER)
    assert w.data["страна"].tolist() == ["Грузия", "Армения", "Сербия", "Казахстан", "Турция"]
    assert w.data["образование"].iloc[2] == "Затрудняюсь ответить"
    # decimal comma (with a space as thousands separator) → float64
    assert w.data["доход"].dtype == np.float64
    np.testing.assert_allclose(w.data["доход"].to_numpy()[:4], [1250.50, 980.00, 2100.75, 1500.25])
    assert np.isnan(w.data["доход"].iloc[4])
    # integers → smallest (nullable where empty)
    assert str(w.data["id"].dtype) == "int8"
    assert str(w.data["возраст"].dtype) == "Int8"
    assert w.data["возраст"].isna().sum() == 1
    # Russian dates → dates
    assert w.data["дата_отъезда"].dtype.kind == "M"
    assert w.data["дата_отъезда"].iloc[0] == pd.Timestamp("2022-03-15")
    notes = " | ".join(w.source.notes)
    assert "semicolon" in notes and "decimal comma detected" in notes and expected in notes


def test_short_cyrillic_samples_detected():
    for enc in ("cp1251", "koi8-r", "cp866"):
        assert detect_encoding("Затрудняюсь ответить;Отказ от ответа".encode(enc))[0] == enc


def test_latin1_csv(tmp_path):
    path = tmp_path / "de.csv"
    path.write_bytes("id,stadt,antwort\n1,München,Größtenteils\n2,Köln,ja\n".encode("latin-1"))
    w = ds.read_wave(path)
    assert w.source.encoding in ("cp1252", "iso8859-1")
    assert w.data["stadt"].tolist() == ["München", "Köln"]


@pytest.mark.parametrize("sep,name", [("\t", "tab"), ("|", "pipe"), (",", "comma")])
def test_separators(tmp_path, sep, name):
    rows = [("1", "a", "0.5"), ("2", "b", "1.5")]
    path = _write(tmp_path / ("x.tsv" if sep == "\t" else "x.txt"), "utf-8", sep=sep, rows=rows,
                  header=("id", "s", "v"), newline="\n")
    w = ds.read_wave(path)
    assert list(w.data.columns) == ["id", "s", "v"]
    assert any(name in n for n in w.source.notes)
    assert w.data["v"].tolist() == [0.5, 1.5]


def test_quoted_fields_with_separator_and_newline(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('id;comment;w\n1;"да; конечно";1,5\n2;"строка\nвторая";2,25\n3;"он сказал ""нет""";0,5\n',
                    encoding="utf-8")
    w = ds.read_wave(path)
    assert w.data["comment"].tolist() == ["да; конечно", "строка\nвторая", 'он сказал "нет"']
    assert w.data["w"].tolist() == [1.5, 2.25, 0.5]


def test_overrides(tmp_path):
    path = _write(tmp_path / "w.csv", "cp1251")
    w = ds.read_wave(path, encoding="WINDOWS-1251", sep=";", decimal=",")
    assert w.source.encoding == "cp1251"
    assert any("(given)" in n for n in w.source.notes)
    w2 = ds.read_wave(path, decimal=".")
    assert w2.data["доход"].dtype.kind in "OU" or str(w2.data["доход"].dtype) in ("str", "string", "object")
    # a wrong encoding override gives garbage letters, not an error; an impossible one is an error
    with pytest.raises(InputFileError, match="decoded as utf-8"):
        ds.read_wave(path, encoding="utf-8")
    with pytest.raises(InputFileError, match="unknown encoding"):
        ds.read_wave(path, encoding="no-such-codec")
    with pytest.raises(InputFileError, match="sep"):
        ds.read_wave(path, sep=";;")


def test_ragged_lines_are_errors(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n", encoding="utf-8")
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(path)
    assert "line 3 has 2 fields, the header has 3" in str(ei.value)
    assert str(path) + ":3" in str(ei.value)
    assert ei.value.hint
    path.write_text("a,b,c\n1,2,3\n4,5,6,7\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="line 3 has 4 fields"):
        ds.read_wave(path)


def test_undecodable_bytes_name_line_and_bytes(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes("id,город\n1,Тбилиси\n2,Ереван\n3,Белград\n".encode("utf-8") + b"4,\xff\xfeX\n" +
                     "5,Стамбул\n".encode("utf-8"))
    with pytest.raises(InputFileError) as ei:
        ds.read_wave(path)
    msg = str(ei.value)
    assert ":5" in msg and "\\xff" in msg and "encoding=" in ei.value.hint


def test_unterminated_quote(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b\n1,"open\n2,3\n', encoding="utf-8")
    with pytest.raises(InputFileError, match="never closes|fields"):
        ds.read_wave(path)


def test_na_tokens_and_raw_text_kept(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("id,x,t\n1,#NULL!,нет\n2,3,NA\n3,,n/a\n", encoding="utf-8")
    w = ds.read_wave(path)
    assert w.data["x"].isna().sum() == 2
    assert w.data["t"].tolist()[0] == "нет" and w.data["t"].tolist()[2] == "n/a"


def test_columns_and_iso_dates(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,d,dt\n1,2022-03-01,2022-03-01T10:00:00\n2,2023-01-15,2023-01-15 11:30:00\n",
                    encoding="utf-8")
    w = ds.read_wave(path, columns=["d", "id"])
    assert list(w.data.columns) == ["d", "id"]
    assert w.meta["d"].type == "date" and w.data["d"].dtype.kind == "M"
    w = ds.read_wave(path)
    assert w.meta["dt"].type == "datetime"
    with pytest.raises(InputFileError, match="no such column"):
        ds.read_wave(path, columns=["nope"])


def test_encoding_names():
    assert normalise_encoding("WINDOWS-1252") == normalise_encoding("windows-1252") == "cp1252"
    assert normalise_encoding("UTF-8") == "utf-8"
    assert normalise_encoding("KOI8-R") == "koi8-r"
    assert iconv_name("cp1251") == "WINDOWS-1251"
    assert iconv_name("latin-1") == "ISO-8859-1"


def test_large_csv_chunks_with_progress(tmp_path):
    n = 20000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"id": np.arange(n), "w": rng.uniform(0.1, 5, n), "c": rng.choice(["Грузия", "Армения", "Сербия"], n)})
    path = tmp_path / "big.csv"
    df.to_csv(path, sep=";", index=False, encoding="cp1251", decimal=",")
    w = ds.read_wave(path, progress=True)
    assert w.source.n_rows == n and w.source.encoding == "cp1251"
    np.testing.assert_allclose(w.data["w"].to_numpy(), df["w"].to_numpy(), rtol=0, atol=0)
    assert w.data["id"].dtype == np.int16
