"""Excel workbooks (.xlsx) through openpyxl: the first sheet unless ``sheet=`` (name or 0-based index)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError
from .base import VariableMeta
from .compact import compact_numeric
from .csv import NA_VALUES


def read_xlsx_file(path: Path, *, sheet, columns, compact: bool, notes: list[str], warnings: list[str]):
    import openpyxl

    where = str(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as ex:  # zipfile.BadZipFile, KeyError, InvalidFileException …
        raise InputFileError(f"cannot open the Excel workbook: {type(ex).__name__}: {ex}", code="input.corrupt",
                             where=where, hint="open it in Excel and save it again as .xlsx") from None
    try:
        names = wb.sheetnames
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise InputFileError(f"sheet index {sheet} out of range: the workbook has {len(names)} sheet(s)",
                                     code="input.bad_option", where=where, hint=f"sheets: {', '.join(names)}")
            ws = wb.worksheets[sheet]
        else:
            if sheet not in names:
                raise InputFileError(f"no sheet named {sheet!r}", code="input.bad_option", where=where,
                                     hint=f"sheets: {', '.join(names)}")
            ws = wb[sheet]
        notes.append(f"sheet {ws.title!r}" + (f" (first of {len(names)})" if sheet is None and len(names) > 1 else ""))
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise InputFileError(f"sheet {ws.title!r} is empty", code="input.empty", where=where,
                                 hint="choose another sheet with sheet=")
        # trailing empty header cells of a sheet with a wider used range
        while header and header[-1] is None:
            header = header[:-1]
        names_ = [str(h) if h is not None else f"Unnamed: {i}" for i, h in enumerate(header)]
        body = [r[:len(names_)] for r in rows if any(v is not None for v in r)]
    finally:
        wb.close()
    if len(set(names_)) != len(names_):
        raise InputFileError("the header row has duplicate column names", code="input.duplicate_column",
                             where=where, hint="give every column a unique name in the first row")
    data = pd.DataFrame.from_records(body, columns=names_) if body else pd.DataFrame(columns=names_)
    if columns is not None:
        missing = [c for c in columns if c not in names_]
        if missing:
            raise InputFileError(f"no such column(s): {', '.join(map(repr, missing))}",
                                 code="input.unknown_column", where=where, hint=f"columns: {', '.join(names_[:30])}")
        data = data[list(columns)]
    meta = {}
    for col in data.columns:
        s = data[col]
        vtype = "numeric"
        if s.dtype == object:
            nn = s.dropna()
            # the kind of the cells, decided in C (pandas' infer_dtype), not cell by cell
            kind = pd.api.types.infer_dtype(nn, skipna=True) if len(nn) else "empty"
            if kind == "mixed-integer" and nn.map(lambda v: isinstance(v, (int, float, bool, np.number))).all():
                kind = "integer"   # ints mixed with booleans: rare, checked value by value
            if kind == "string":
                s = s.where(~s.isin([v for v in NA_VALUES if v]), None)
                data[col] = s
                vtype = "string"
            elif kind in ("datetime", "date", "datetime64"):
                data[col] = pd.to_datetime(s)
                vtype = "datetime"
            elif kind in ("integer", "floating", "mixed-integer-float", "boolean", "decimal"):
                data[col] = pd.to_numeric(s)
            else:
                vtype = "string" if len(nn) else "numeric"
        elif s.dtype.kind == "M":
            vtype = "datetime"
        if vtype == "datetime":
            d = data[col]
            if (d.dropna() == d.dropna().dt.normalize()).all():
                data[col] = d.astype("datetime64[s]")
                vtype = "date"
        if compact and vtype == "numeric":
            out = compact_numeric(data[col].to_numpy())
            if out is not None:
                data[col] = out
        meta[str(col)] = VariableMeta(name=str(col), type=vtype)
    return data, meta
