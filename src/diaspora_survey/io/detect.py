"""What is this file? Format detection by content (magic bytes), not by suffix.

The suffix only says what the user *thinks* the file is. :func:`sniff` looks at the first
bytes; :func:`resolve_format` reconciles the two:

* same family (a ``.zsav`` that is really a bytecode-compressed ``.sav``, or the reverse):
  read it, the content wins, and say so in ``source.notes``;
* a different format (a ``.sav`` that is a CSV text file): raise :class:`InputFileError`
  naming the file, what it looks like and how to proceed (rename it, or pass ``format=``);
* an unknown suffix: the content decides; text files are read as CSV.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFileError

#: formats read_wave can read, keyed by the name used in ``format=`` and ``SourceInfo.format``
FORMATS = ("sav", "zsav", "por", "dta", "csv", "xlsx")

SUFFIXES = {
    ".sav": "sav", ".zsav": "zsav", ".por": "por", ".dta": "dta",
    ".csv": "csv", ".tsv": "csv", ".tab": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
}

DESCRIPTIONS = {
    "sav": "an SPSS system file (.sav)",
    "zsav": "a compressed SPSS system file (.zsav)",
    "por": "an SPSS portable file (.por)",
    "dta": "a Stata data file (.dta)",
    "csv": "a CSV text file",
    "xlsx": "an Excel workbook (.xlsx)",
    "sav-encrypted": "a password-protected (encrypted) SPSS file",
    "xls": "a legacy Excel 97-2003 workbook (.xls)",
    "zip": "a ZIP archive",
    "gzip": "a gzip-compressed file",
    "bzip2": "a bzip2-compressed file",
    "xz": "an xz-compressed file",
    "7z": "a 7-Zip archive",
    "parquet": "a Parquet file",
    "pdf": "a PDF document",
    "sas7bdat": "a SAS data set (.sas7bdat)",
    "xpt": "a SAS transport file (.xpt)",
    "rdata": "an R data file (.RData/.rds)",
    "ods": "an OpenDocument spreadsheet (.ods)",
    "html": "an HTML page",
    "empty": "an empty file",
    "binary": "a binary file of unknown format",
}

FAMILY = {"sav": "spss-system", "zsav": "spss-system"}
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Sniffed:
    kind: str          # a key of DESCRIPTIONS
    detail: str = ""   # e.g. "$FL2 (bytecode-compressed)"

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.kind, self.kind)


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    # control bytes other than tab, CR, LF, FF are rare in text files (in any 8-bit code page)
    bad = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return bad <= len(head) * 0.01


def sniff(path: str | Path) -> Sniffed:
    """Identify a file by its first bytes. Never raises for unreadable content: returns ``binary``."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    return sniff_bytes(head, path)


def sniff_bytes(head: bytes, path: str | Path | None = None) -> Sniffed:
    if not head:
        return Sniffed("empty")
    if head.startswith(b"$FL2"):
        return Sniffed("sav", "$FL2 record (uncompressed or bytecode-compressed system file)")
    if head.startswith(b"$FL3"):
        return Sniffed("zsav", "$FL3 record (zlib-compressed system file)")
    if head[8:20] == b"ENCRYPTEDSAV" or head[8:20] == b"ENCRYPTEDSPS":
        return Sniffed("sav-encrypted", "ENCRYPTEDSAV header")
    if b"SPSSPORT" in head[:2048] or b"SPSS PORT FILE" in head[:512]:
        return Sniffed("por", "SPSSPORT signature")
    if head.startswith(b"<stata_dta>"):
        return Sniffed("dta", "<stata_dta> (Stata 13 or later)")
    # Stata 5-12: release byte, byte order (1 = big endian, 2 = little endian), file type 1
    if len(head) >= 4 and head[0] in (0x68, 0x69, 0x6C, 0x6E, 0x6F, 0x71, 0x72, 0x73) \
            and head[1] in (1, 2) and head[2] == 1 and head[3] == 0:
        return Sniffed("dta", f"Stata release byte {head[0]}")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path, head)
    for magic, kind, detail in _MAGIC:
        if head.startswith(magic):
            return Sniffed(kind, detail)
    if head[32:64].startswith(b"\xc2\xea\x81\x60\xb3\x14\x11\xcf\xbd\x92\x08\x00\x09\xc7\x31\x8c\x18\x1f\x10\x11"):
        return Sniffed("sas7bdat")
    if head.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD") or head.startswith(b"HEADER RECORD*******LIBV8"):
        return Sniffed("xpt")
    if head.startswith((b"RDX2\n", b"RDX3\n", b"RDA2\n", b"RDA3\n")):
        return Sniffed("rdata")
    if _looks_like_text(head):
        low = head[:512].lstrip().lower()
        if low.startswith((b"<!doctype html", b"<html")):
            return Sniffed("html")
        return Sniffed("csv", "text")
    return Sniffed("binary")


# formats recognised by their first bytes alone: (magic, kind, detail)
_MAGIC = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls", "OLE2 compound document"),
    (b"\x1f\x8b", "gzip", ""),
    (b"BZh", "bzip2", ""),
    (b"\xfd7zXZ\x00", "xz", ""),
    (b"7z\xbc\xaf\x27\x1c", "7z", ""),
    (b"PAR1", "parquet", ""),
    (b"%PDF", "pdf", ""),
)


def _sniff_zip(path, head: bytes) -> Sniffed:
    import zipfile

    if path is None:
        return Sniffed("zip")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return Sniffed("zip", "damaged ZIP container")
    if "xl/workbook.xml" in names or any(n.startswith("xl/workbook") for n in names):
        return Sniffed("xlsx", "Office Open XML workbook")
    if "mimetype" in names and "content.xml" in names:
        return Sniffed("ods")
    return Sniffed("zip")


def resolve_format(path: Path, forced: str | None = None) -> tuple[str, list[str]]:
    """Return (format, notes) for ``path``; raise :class:`InputFileError` when it cannot be read.

    ``forced`` is the user's ``format=`` option: it overrides the suffix, not the content —
    a CSV cannot be parsed as SPSS whatever one asks.
    """
    notes: list[str] = []
    sniffed = sniff(path)
    name = path.name
    if forced is not None:
        forced = forced.lower().lstrip(".")
        forced = {"tsv": "csv", "txt": "csv", "stata": "dta", "spss": "sav", "excel": "xlsx"}.get(forced, forced)
        if forced not in FORMATS:
            raise InputFileError(f"unknown format {forced!r}", code="input.bad_option", where=str(path),
                                 hint=f"format= must be one of {', '.join(FORMATS)}")
        expected = forced
    else:
        expected = SUFFIXES.get(path.suffix.lower())

    if sniffed.kind == "empty":
        raise InputFileError("the file is empty (0 bytes)", code="input.empty", where=str(path),
                             hint="the download or export did not complete; export the data again")
    if sniffed.kind == "sav-encrypted":
        raise InputFileError(
            "cannot read this SPSS file: it is password-protected (encrypted) — ReadStat/pyreadstat, "
            "and so this tool, cannot read corrupt, truncated or password-protected (encrypted) files",
            code="input.encrypted", where=str(path),
            hint="open it in SPSS with the password and save an unencrypted copy "
                 "(File > Save As, untick 'Encrypt file with password')")

    kind = sniffed.kind
    if kind in FORMATS:
        if expected is None:
            if path.suffix:
                notes.append(f"unknown suffix {path.suffix!r}: content looks like {sniffed.description}, read as {kind}")
            else:
                notes.append(f"no suffix: content looks like {sniffed.description}, read as {kind}")
            return kind, notes
        if expected == kind:
            return kind, notes
        if FAMILY.get(expected) and FAMILY.get(expected) == FAMILY.get(kind):
            notes.append(f"{name} has the suffix of {DESCRIPTIONS[expected]} but its content is "
                         f"{sniffed.description} ({sniffed.detail}); read by content")
            return kind, notes
        suffix_for = {"sav": ".sav", "zsav": ".zsav", "por": ".por", "dta": ".dta", "csv": ".csv", "xlsx": ".xlsx"}[kind]
        what = DESCRIPTIONS[expected].replace("an SPSS system file (.sav)", "an SPSS system file")
        raise InputFileError(
            f"{name} is not {what}: it looks like {sniffed.description}",
            code="input.wrong_format", where=str(path),
            hint=f"rename it to {suffix_for} (raw files are never renamed by this tool), "
                 f"or pass format={kind!r} to read it as {sniffed.description}")

    # content is something we cannot read
    if kind in ("binary", "zip") and expected in ("sav", "zsav"):
        raise InputFileError(
            f"{name} is not a readable SPSS system file: no $FL2/$FL3 header — the file is corrupt, "
            "truncated or password-protected (encrypted)",
            code="input.corrupt", where=str(path),
            hint="export the data from the original source again; if it is encrypted, save an unencrypted copy in SPSS")
    if kind == "binary" and expected == "dta":
        raise InputFileError(f"{name} is not a readable Stata file: no Stata signature — the file is corrupt or truncated",
                             code="input.corrupt", where=str(path), hint="export the data from Stata again")
    if kind == "binary" and expected == "por":
        raise InputFileError(f"{name} is not a readable SPSS portable file: no SPSSPORT signature — "
                             "the file is corrupt or truncated", code="input.corrupt", where=str(path),
                             hint="export the data from the original source again")
    if kind == "zip" and expected == "xlsx":
        raise InputFileError(f"{name} is not a readable Excel workbook: {sniffed.detail or 'a ZIP archive without a workbook'}",
                             code="input.corrupt", where=str(path), hint="save it again from Excel as .xlsx")
    hints = {
        "xls": "open it in Excel or LibreOffice and save it as .xlsx (or export CSV)",
        "ods": "save it as .xlsx or export CSV",
        "gzip": "decompress it first (gunzip) and read the file inside",
        "bzip2": "decompress it first and read the file inside",
        "xz": "decompress it first and read the file inside",
        "7z": "extract it first and read the file inside",
        "zip": "extract it first and read the file inside",
        "sas7bdat": "export it to .sav, .dta or CSV",
        "xpt": "export it to .sav, .dta or CSV",
        "rdata": "write it from R with haven::write_sav() or write.csv()",
        "parquet": "read it with pandas.read_parquet(); read_wave takes SPSS, Stata, CSV and xlsx",
        "html": "the download returned a web page (a login or error page?), not the data: download it again",
        "pdf": "a PDF holds no data table: get the data file itself",
    }
    raise InputFileError(
        f"{name} cannot be read: it looks like {sniffed.description}"
        + (f", not {DESCRIPTIONS[expected]}" if expected else ""),
        code="input.unsupported", where=str(path),
        hint=hints.get(kind, "read_wave takes .sav, .zsav, .por, .dta, .csv/.tsv/.txt and .xlsx; "
                             "if this is one of them, the file is corrupt or truncated: export it again"))
