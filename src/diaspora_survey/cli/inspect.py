"""``diaspora-survey inspect FILE``: what is in a raw file, variable by variable."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

N_EXAMPLES = 3


def _fmt_value(v: Any) -> Any:
    """A JSON-friendly scalar."""
    import numpy as np
    import pandas as pd

    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        f = float(v)
        return int(f) if f.is_integer() else f
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    if isinstance(v, pd.Timedelta):
        secs = v.total_seconds()
        sign, secs = ("-" if secs < 0 else ""), abs(secs)
        h, rem = divmod(secs, 3600)
        m, sec = divmod(rem, 60)
        return f"{sign}{int(h):02d}:{int(m):02d}:{sec:02.0f}" if float(sec).is_integer() else f"{sign}{int(h):02d}:{int(m):02d}:{sec:09.6f}"
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return v if isinstance(v, (int, float, str)) else str(v)


def summarise(wave, variables: list[str] | None = None) -> dict:
    """The inspect report of a RawWave as a plain dict (what ``--json`` prints).

    Every variable has its ``value_labels`` (``value``, ``label``, ``n``, ``missing`` = the kind
    of a user-missing code or null) and ``user_missing``/``missing_ranges``; with ``variables``
    only those are reported, each with all its ``values`` (labelled, user-missing and — up to
    50 distinct — unlabelled values with counts) and a ``summary`` (min, max, mean, distinct).
    """
    from ..io.describe import value_table

    data = wave.data
    rows = []
    for col in (variables if variables is not None else data.columns):
        s = data[col]
        vm = wave.meta.get(str(col))
        system = s.isna()
        user = vm.is_user_missing(s) & ~system if vm is not None and (vm.missing_values or vm.missing_ranges) \
            else system & False
        valid = ~(system | user)
        examples = []
        for v in s[valid].drop_duplicates().head(N_EXAMPLES).tolist():
            examples.append(_fmt_value(v))
        rows.append({
            "name": str(col),
            "label": vm.label if vm else None,
            "type": vm.type if vm else "numeric",
            "dtype": str(s.dtype),
            "format": vm.format if vm else None,
            "measure": vm.measure if vm else "unknown",
            "valid_n": int(valid.sum()),
            "missing_n": int((system | user).sum()),
            "system_missing_n": int(system.sum()),
            "user_missing_n": int(user.sum()),
            "n_value_labels": len(vm.value_labels) if vm else 0,
            "user_missing": ([_fmt_value(x) for x in vm.missing_values]
                             + [f"{_fmt_value(lo)}..{_fmt_value(hi)}" for lo, hi in vm.missing_ranges]) if vm else [],
            "missing_kinds": {str(_fmt_value(k)): v for k, v in vm.missing_kinds.items()} if vm else {},
            "examples": examples,
        })
        if variables is not None or (vm is not None and vm.value_labels):
            table = value_table(wave, str(col))
            rows[-1]["value_labels"] = [r for r in table["values"] if r["label"] is not None]
            rows[-1]["missing_ranges"] = [[_fmt_value(lo), _fmt_value(hi)] for lo, hi in vm.missing_ranges] \
                if vm else []
            if variables is not None:
                rows[-1]["values"] = table["values"]
                rows[-1]["other_values"] = table["other_values"]
                rows[-1]["summary"] = table["summary"]
        else:
            rows[-1]["value_labels"] = []
            rows[-1]["missing_ranges"] = [[_fmt_value(lo), _fmt_value(hi)] for lo, hi in vm.missing_ranges] \
                if vm else []
    src = wave.source
    return {
        "source": {"path": src.path, "format": src.format, "encoding": src.encoding, "sha256": src.sha256,
                   "rows": src.n_rows, "columns": src.n_columns, "file_label": src.file_label,
                   "notes": list(src.notes)},
        "warnings": list(wave.warnings),
        "variables": rows,
    }


def _example_text(row: dict, vm) -> str:
    parts = []
    for v in row["examples"]:
        text = str(v)
        if vm is not None and vm.value_labels:
            key = v
            lab = vm.value_labels.get(key)
            if lab is not None:
                text = f"{text} «{lab}»"
        parts.append(text if len(text) <= 40 else text[:39] + "…")
    return ", ".join(parts)


def render(report: dict, wave, console) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    src = report["source"]
    head = (f"[bold]{escape(Path(src['path']).name)}[/bold]  {src['format']}, {src['rows']:,} rows × "
            f"{src['columns']:,} columns, encoding {src['encoding'] or '—'}")
    console.print(head)
    if src.get("file_label"):
        console.print(f"file label: {src['file_label']}", markup=False)
    for note in src["notes"]:
        console.print(Text(f"note: {note}", style="dim"))
    for w in report["warnings"]:
        console.print(Text(f"warning: {w}", style="yellow"))
    table = Table(show_lines=False, header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("label", max_width=40)
    table.add_column("type")
    table.add_column("valid n", justify="right")
    table.add_column("missing n", justify="right")
    table.add_column("labels", justify="right")
    table.add_column("examples", max_width=60)
    for row in report["variables"]:
        vm = wave.meta.get(row["name"])
        miss = f"{row['missing_n']:,}"
        if row["user_missing_n"]:
            miss += f" ({row['user_missing_n']:,} user)"
        table.add_row(Text(row["name"]), Text(row["label"] or ""), row["type"], f"{row['valid_n']:,}", miss,
                      str(row["n_value_labels"] or ""), Text(_example_text(row, vm)))
    console.print(table)


def render_variables(report: dict, console) -> None:
    """``inspect FILE --variable NAME``: one block per variable — label, type, missing codes and
    their meaning, then every value with its label, count, share of rows and missing kind."""
    from rich.table import Table
    from rich.text import Text

    src = report["source"]
    console.print(Text(f"{Path(src['path']).name}  {src['format']}, {src['rows']:,} rows", style="bold"))
    for row in report["variables"]:
        console.print()
        console.print(Text(f"{row['name']}", style="bold") + Text(f"  «{row['label']}»" if row["label"] else ""))
        fmt = f", format {row['format']}" if row.get("format") else ""
        console.print(Text(f"  {row['type']}{fmt}, measure {row['measure']}"))
        console.print(Text(f"  valid {row['valid_n']:,}; missing {row['missing_n']:,} "
                           f"({row['system_missing_n']:,} system, {row['user_missing_n']:,} user-missing)"))
        miss = [str(x) for x in row["user_missing"]]
        console.print(Text("  user-missing codes: " + (", ".join(miss) if miss else "none declared")))
        summ = row.get("summary") or {}
        if "min" in summ:
            console.print(Text(f"  valid values: {summ['distinct']:,} distinct, min {summ['min']}, "
                               f"max {summ['max']}, mean {summ['mean']:.4g}"))
        if not row["values"]:
            continue
        table = Table(header_style="bold", show_edge=False, pad_edge=False)
        for col, just in (("value", "right"), ("label", "left"), ("n", "right"), ("% of rows", "right"),
                          ("missing", "left")):
            table.add_column(col, justify=just, overflow="fold")
        total = src["rows"] or 1
        for v in row["values"]:
            shown = '""' if v["value"] == "" else str(v["value"])     # an empty text is a value too
            table.add_row(Text(shown), Text(v["label"] or ""), f"{v['n']:,}",
                          f"{100 * v['n'] / total:.1f}", Text(v["missing"] or ""))
        console.print(table)
        if row.get("other_values"):
            console.print(Text(f"  … and {row['other_values']:,} distinct values without labels "
                               "(see the summary above)", style="dim"))


def _child_error(err: BaseException) -> int:
    """How the forked child reports an exception: as the CLI would (exit 2), or a traceback (1)."""
    from ..errors import DiasporaSurveyError

    if isinstance(err, DiasporaSurveyError):
        from ._console import render_error

        render_error(err)
        return 2
    if isinstance(err, KeyboardInterrupt):
        return 130
    import traceback

    traceback.print_exception(err)
    return 1


def _check_names(wave, names: list[str], file) -> list[str]:
    """The requested columns, in the order asked; an unknown one is an error with the closest
    names (case-insensitive match first)."""
    import difflib

    from ..errors import InputFileError

    cols = [str(c) for c in wave.data.columns]
    out = []
    for n in names:
        if n in cols:
            out.append(n)
            continue
        same = [c for c in cols if c.casefold() == n.casefold()]
        if len(same) == 1:
            out.append(same[0])
            continue
        close = difflib.get_close_matches(n, cols, n=3)
        raise InputFileError(f"no variable {n!r} in the file", code="input.unknown_variable", where=str(file),
                             hint=(f"did you mean {', '.join(close)}? " if close else "") +
                                  "`diaspora-survey inspect FILE` lists the variables")
    return out


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        file: Path = typer.Argument(..., help="Raw data file: .sav, .zsav, .por, .dta, .csv/.tsv/.txt or .xlsx."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for machines instead of a table."),
        encoding: str = typer.Option(None, "--encoding", help="Override the encoding, e.g. WINDOWS-1251."),
        sep: str = typer.Option(None, "--sep", help="CSV separator, e.g. ';' or '\\t' (detected if not given)."),
        variable: Optional[list[str]] = typer.Option(
            None, "--variable", "-v", help="Show one variable in full: value labels with counts, "
                                           "missing codes and their meaning (repeatable)."),
    ) -> None:
        """Show the variables of a raw file: label, type, valid and missing n, value labels, examples.

        Example: diaspora-survey inspect raw/2022-03_wave1.sav
        """
        import json
        import sys

        from rich.console import Console

        from ..io import read_wave

        from .._guard import run_isolated

        if sep is not None:
            sep = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(sep, sep)

        def work() -> None:
            wave = read_wave(file, encoding=encoding, sep=sep)
            names = _check_names(wave, variable, file) if variable else None
            report = summarise(wave, names)
            if as_json:
                sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=1, default=str) + "\n")
                return
            if names is not None:
                render_variables(report, Console(highlight=False))
                return
            render(report, wave, Console(highlight=False))

        # in a forked child where possible: a corrupt SPSS file that crashes ReadStat (SIGSEGV)
        # then still ends in one message and exit status 2 (see diaspora_survey._guard)
        rc = run_isolated(work, path=file, on_error=_child_error)
        if rc:
            raise typer.Exit(rc)
