"""The commands' console and error rendering.

Command modules (one per command, each defining ``register(app)``) must not import pandas,
statsmodels, matplotlib or reportlab at import time.
"""


def console(*, stderr: bool = False, soft_wrap: bool = True):
    """The commands' rich console. Not a terminal (piped, logged, CI): $COLUMNS or 120
    columns; tables that do not fit switch to the long layout (:func:`print_table`)."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    piped = os.environ.get("COLUMNS", "")
    return Console(highlight=False, soft_wrap=soft_wrap, stderr=stderr,
                   width=None if stream.isatty() else int(piped) if piped.isdigit() else 120)


def render_error(err) -> None:
    """A DiasporaSurveyError as one message (and its hint) on stderr."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    # escape: messages and hints name e.g. "[reference] tables", which is not markup
    from ..report.disclosure import strip_control as clean   # no escape sequences from input

    where = f"[bold]{escape(clean(err.where))}[/bold]: " if err.where else ""
    console.print(f"[red]error[/red] ({err.code}): {where}{escape(clean(err.message))}", markup=True)
    if err.hint:
        console.print(f"  [cyan]hint[/cyan]: {escape(clean(err.hint))}", markup=True)


# ---- tables readable anywhere -------------------------------------------------------------
#
# One helper for every command's tables: numbers rounded to what the column needs, column
# names never cut, and a "long" layout (one block per row, one line per value) when the table
# does not fit the terminal or the 120 columns used when the output is piped.

LAYOUTS = ("auto", "wide", "long")


def out_width(console) -> int:
    return int(console.width or 120)


def decimals_for(values, *, significant: int = 3, max_decimals: int = 4) -> int:
    """Decimals that give ``significant`` digits to the column's typical (median absolute,
    non-zero) value: ages 44.9, shares 0.142, counts 2,530."""
    import math

    xs = sorted(abs(float(v)) for v in values if v is not None and v == v and v != 0
                and math.isfinite(float(v)))
    if not xs:
        return 0
    mid = xs[len(xs) // 2]
    return max(0, min(max_decimals, significant - 1 - int(math.floor(math.log10(mid)))))


def fmt_num(v, decimals: int, *, thousands: bool = True) -> str:
    """A number with ``decimals`` decimals ("" for missing, no "-0.0", "−" as minus)."""
    import math

    if v is None or (isinstance(v, float) and v != v):
        return ""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "∞" if x > 0 else "−∞"
    s = f"{x:,.{decimals}f}" if thousands else f"{x:.{decimals}f}"
    if s.lstrip("-").replace("0", "").replace(".", "").replace(",", "") == "":
        s = s.lstrip("-")
    return s.replace("-", "−")


def fmt_p(v) -> str:
    if v is None or v != v:
        return ""
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def print_table(console, rows: list[dict], columns: list[tuple[str, str, str]], *,
                title: str | None = None, layout: str = "auto", keys: int = 1) -> None:
    """Print ``rows`` (dicts of already formatted strings) with ``columns`` = [(key, header,
    justify)]; ``keys``: how many leading columns name the row (the long layout's heading).

    ``layout``: "wide" (a table; headers wrap at spaces, cells never cut), "long" (one block
    per row: the key columns as a heading, then "header: value" lines) or "auto" (wide when
    it fits the output width, else long).
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from ..report.disclosure import strip_control as clean   # no escape sequences from input

    if layout not in LAYOUTS:
        from ..errors import DiasporaSurveyError

        raise DiasporaSurveyError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}",
                                  code="cli.bad_option")
    cols = [c for c in columns if any(str(r.get(c[0], "")) != "" for r in rows) or c[0] in
            [k for k, _, _ in columns[:keys]]]
    width = out_width(console)
    cell_w = {k: max([len(str(r.get(k, ""))) for r in rows] + [1]) for k, _, _ in cols}
    head_w = {k: max(len(w) for w in h.split()) if h.split() else 1 for k, h, _ in cols}
    need = sum(max(cell_w[k], head_w[k]) + 3 for k, _, _ in cols) + 1
    if layout == "wide" or (layout == "auto" and need <= width):
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for k, h, just in cols:
            t.add_column(escape(h), justify=just, no_wrap=False, overflow="fold",
                         min_width=min(max(cell_w[k], head_w[k]), 60))
        for r in rows:
            t.add_row(*[escape(clean(str(r.get(k, "")))) for k, _, _ in cols])
        console.print(t)
        return
    if title:
        console.print(f"[bold]{escape(title)}[/bold]")
    label_w = max(len(h) for _, h, _ in cols[keys:]) if len(cols) > keys else 0
    for r in rows:
        head = clean(" · ".join(str(r.get(k, "")) for k, _, _ in cols[:keys] if str(r.get(k, ""))))
        console.print(f"  [bold]{escape(head)}[/bold]")
        for k, h, _ in cols[keys:]:
            v = clean(str(r.get(k, "")))
            if v:
                console.print(f"    {escape(h.ljust(label_w))}  {escape(v)}", soft_wrap=True)
