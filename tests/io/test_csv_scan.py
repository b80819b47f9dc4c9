"""The vectorised CSV scan (decoding, quote-aware field counts, blank lines) against a plain
line-by-line reference, on random files and with tiny blocks so that every block boundary
case (inside a quoted field, inside a CRLF, inside a multi-byte character) occurs."""
from __future__ import annotations

import csv as pycsv
import random

import pytest

from diaspora_survey.errors import InputFileError
from diaspora_survey.io import csv as csvmod


def reference_scan(data: bytes, enc: str, sep: str, n_header: int):
    """('ok', records) or ('ragged' | 'unterminated' | 'encoding', line) — one line at a time."""
    records, rec_start, buf, inq = 0, 0, [], False
    lines = data.split(b"\n")   # as a binary file iterates: on \n only (bytes.splitlines also splits on \r)
    lines = [ln + b"\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    for lineno, raw in enumerate(lines, 1):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            return ("encoding", lineno)
        if not buf:
            rec_start = lineno
            if not inq and not text.strip(" \t\r\n\x0b\x0c"):
                continue
        buf.append(text)
        if raw.count(b'"') % 2:
            inq = not inq
        if inq:
            continue
        record = "".join(buf)
        buf = []
        n = len(next(pycsv.reader([record.rstrip("\r\n")], delimiter=sep)))
        if n != n_header:
            return ("ragged", rec_start)
        records += 1
    if inq:
        return ("unterminated", rec_start)
    return ("ok", records - 1)


def vector_scan(tmp_path, data: bytes, enc: str, sep: str, n_header: int):
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    try:
        return ("ok", csvmod._scan(p, enc, sep, n_header, None))
    except InputFileError as ex:
        line = int(ex.where.rsplit(":", 1)[1])
        kind = ("encoding" if ex.code == "input.encoding" else
                "unterminated" if "never closes" in ex.message else "ragged")
        return (kind, line)


def random_field(rng: random.Random, sep: str) -> str:
    kind = rng.random()
    words = ["Грузия", "München", "a", "12,5", "", "x y", "Ереван", "ok"]
    if kind < 0.55:
        return rng.choice(words)
    inner = rng.choice(words + [f"he said {sep} ok", "line\nbreak", 'a "quoted" word', "\r\n", ""])
    return '"' + inner.replace('"', '""') + '"'


def random_file(rng: random.Random, sep: str, n_cols: int, newline: str) -> str:
    lines = [sep.join(f"c{i}" for i in range(n_cols))]
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.1:
            lines.append(rng.choice(["", "   ", "\t"]))      # blank lines are skipped
            continue
        n = n_cols if r > 0.2 else rng.choice([max(1, n_cols - 1), n_cols + 1])
        lines.append(sep.join(random_field(rng, sep) for _ in range(n)))
    text = newline.join(lines) + (newline if rng.random() < 0.8 else "")
    if rng.random() < 0.05:
        text += '"never closed' + newline
    return text


@pytest.mark.parametrize("block", [1, 3, 7, 64, 4 << 20])
def test_scan_equals_reference(tmp_path, monkeypatch, block):
    monkeypatch.setattr(csvmod, "SCAN_BLOCK", block)
    rng = random.Random(block)
    seen = set()
    for case in range(150):
        sep = rng.choice([",", ";", "\t", "|"])
        enc = rng.choice(["utf-8", "cp1251", "utf-8-sig"])
        text = random_file(rng, sep, rng.randint(1, 4), rng.choice(["\n", "\r\n"]))
        if enc == "cp1251":
            text = text.replace("München", "Munchen")
        data = text.encode(enc)
        n_header = len(next(pycsv.reader([text.lstrip("\ufeff").split("\n")[0].rstrip("\r")], delimiter=sep)))
        want = reference_scan(data, enc, sep, n_header)
        got = vector_scan(tmp_path, data, enc, sep, n_header)
        assert got == want, (case, block, sep, enc, text)
        seen.add(want[0])
    assert {"ok", "ragged"} <= seen   # the generator exercises both outcomes


def test_scan_reports_undecodable_line_and_column(tmp_path, monkeypatch):
    body = "".join(f"{i};Тбилиси;1,5\n" for i in range(1, 5000)).encode("utf-8")
    data = "id;город;w\n".encode("utf-8") + body + b"5000;\xff\xfeX;2\n"
    for block in (13, 4096, 4 << 20):
        monkeypatch.setattr(csvmod, "SCAN_BLOCK", block)
        p = tmp_path / "u.csv"
        p.write_bytes(data)
        with pytest.raises(InputFileError) as ei:
            csvmod._scan(p, "utf-8", ";", 3, None)
        assert ei.value.where.endswith(":5001")
        assert "column 6" in ei.value.message and "\\xff" in ei.value.message
    # a byte Windows-1251 does not have (0x98)
    p.write_bytes("id;x\n1;а\n2;б\n".encode("cp1251") + b"3;\x98\n")
    with pytest.raises(InputFileError, match="line 4 cannot be decoded as cp1251"):
        csvmod._scan(p, "cp1251", ";", 2, None)


def test_scan_counts_records_of_a_large_file(tmp_path):
    n = 300_000
    p = tmp_path / "big.csv"
    p.write_bytes(("a;b;c\r\n" + '1;"x;\r\ny";2,5\r\n' * n).encode("utf-8"))
    assert csvmod._scan(p, "utf-8", ";", 3, None) == n
