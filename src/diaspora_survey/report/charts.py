"""Charts (seaborn on matplotlib), drawn only from disclosed aggregate tables.

Each drawing function takes a :class:`~.tables.DisclosedTable` — its ``values`` frame has
suppressed statistics already set to NA — so a chart can never show what a table hides:
suppressed bars are simply not drawn and the caption carries the table's footnotes.

Reproducibility: figures are :class:`matplotlib.figure.Figure` objects (no pyplot state),
saved with fixed DPI and without date or software metadata, and SVGs use a fixed hash
salt, so the same data gives byte-identical PNG/SVG files. matplotlib and seaborn are
imported inside the functions to keep the command line fast.
"""
from __future__ import annotations

import io

from ..errors import ReportError
from .tables import DisclosedTable

DPI = 200
WIDTH_IN = 6.6           # fits an A4 text column with 2 cm margins
MAX_HEIGHT_IN = 8.6      # fits an A4 text frame with a title and a caption (2 cm margins)
MAX_ROWS = 30            # rows of a chart by category; beyond: the largest, the rest named
_SVG_SALT = "diaspora-survey"
SAMPLE_LABEL = "Sample (weighted)"       # defaults; the report passes the project's wording
POPULATION_LABEL = "Population"


def _style():
    """A context manager for a consistent, legible style (DejaVu Sans has Cyrillic)."""
    import matplotlib as mpl
    import seaborn as sns

    rc = {
        "font.family": "DejaVu Sans",
        "font.size": 8.5,
        "axes.titlesize": 9.5,
        "axes.labelsize": 8.5,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "svg.hashsalt": _SVG_SALT,
        "svg.fonttype": "path",
        "path.simplify": True,
    }
    style = sns.axes_style("whitegrid")
    style.update(rc)
    return mpl.rc_context(style)


def _figure(height_in: float, ncols: int = 1, sharey: bool = False, nrows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).reshape(-1)
    return fig, axes


def _palette():
    import seaborn as sns

    return sns.color_palette("deep")


def age_pyramid(table: DisclosedTable, *, population_label: str = POPULATION_LABEL, **_):
    """Sample vs population age structure: men left, women right, as % of adults.

    Columns: ``age_group``, ``sex`` (``male``/``female``), ``estimate`` and
    ``population`` (proportions of the adult total).
    """
    import numpy as np
    import pandas as pd
    import seaborn as sns

    v = table.values
    v = v[v["sex"].isin(["male", "female"])].copy()
    groups = list(dict.fromkeys(v["age_group"].astype(str)))
    v["age_group"] = pd.Categorical(v["age_group"].astype(str), categories=groups[::-1],
                                    ordered=True)
    sign = np.where(v["sex"] == "male", -1.0, 1.0)
    v["sample_pct"] = sign * pd.to_numeric(v["estimate"], errors="coerce") * 100
    v["pop_pct"] = sign * pd.to_numeric(v["population"], errors="coerce") * 100
    pal = _palette()
    with _style():
        fig, (ax,) = _figure(3.9)
        shown = v.dropna(subset=["sample_pct"])
        sns.barplot(data=shown, y="age_group", x="sample_pct", hue="sex",
                    hue_order=["male", "female"], palette=[pal[0], pal[3]], orient="h",
                    dodge=False, order=groups[::-1], ax=ax, alpha=0.85, legend=False)
        # population as outlined bars on the same rows
        pos = {g: i for i, g in enumerate(groups[::-1])}
        pop = v.dropna(subset=["pop_pct"])
        ax.barh([pos[g] for g in pop["age_group"].astype(str)], pop["pop_pct"], height=0.8,
                fill=False, edgecolor="black", linewidth=0.9)
        lim = np.nanmax(np.abs(np.r_[v["sample_pct"].to_numpy(float),
                                     v["pop_pct"].to_numpy(float), 1.0]))
        ax.set_xlim(-lim * 1.1, lim * 1.1)
        ticks = ax.get_xticks()
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{abs(t):.0f}" for t in ticks])
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel("% of adults (men left, women right)")
        ax.set_ylabel("Age group")
        from matplotlib.patches import Patch

        # below the plot: inside (upper left) it covered the oldest men's bars
        fig.legend(handles=[Patch(color=pal[0], label="Men, sample"),
                            Patch(color=pal[3], label="Women, sample"),
                            Patch(fill=False, edgecolor="black", label=population_label)],
                   loc="outside lower center", ncol=3, frameon=False)
    return fig


def education(table: DisclosedTable, *, sample_label: str = SAMPLE_LABEL,
              population_label: str = POPULATION_LABEL, **_):
    """Education distribution: sample share with 95 % CI beside the population share.

    Columns: ``category`` (label), ``estimate``, ``ci_low``, ``ci_high``, ``population``.
    """
    import numpy as np
    import pandas as pd
    import seaborn as sns

    v = table.values.copy()
    cats = list(dict.fromkeys(v["category"].astype(str)))
    long = pd.concat([
        pd.DataFrame({"category": v["category"].astype(str), "source": sample_label,
                      "pct": pd.to_numeric(v["estimate"], errors="coerce") * 100}),
        pd.DataFrame({"category": v["category"].astype(str), "source": population_label,
                      "pct": pd.to_numeric(v["population"], errors="coerce") * 100}),
    ], ignore_index=True).dropna(subset=["pct"])
    pal = _palette()
    with _style():
        fig, (ax,) = _figure(_rows_height(len(cats), 0.42, 0.9, min_rows=3))
        sns.barplot(data=long, y="category", x="pct", hue="source", order=cats,
                    hue_order=[sample_label, population_label], palette=[pal[0], "0.65"],
                    orient="h", ax=ax, errorbar=None)
        ok = v.dropna(subset=["estimate", "ci_low", "ci_high"])
        y = np.array([cats.index(c) for c in ok["category"].astype(str)], dtype=float) - 0.2
        est = ok["estimate"].to_numpy(float) * 100
        ax.errorbar(est, y, xerr=[est - ok["ci_low"].to_numpy(float) * 100,
                                  ok["ci_high"].to_numpy(float) * 100 - est],
                    fmt="none", ecolor="black", elinewidth=0.9, capsize=2.5)
        ax.set_xlabel("% of adults (sample: 95 % confidence interval)")
        ax.set_ylabel("")
        # below the plot: inside (loc="center right") it covered a bar
        handles, names = ax.get_legend_handles_labels()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig


def entrepreneurship_by_country(table: DisclosedTable, *, population: float | None = None,
                                population_label: str = POPULATION_LABEL,
                                sample_label: str = SAMPLE_LABEL, **_):
    """Share of entrepreneurs by country of residence with 95 % CIs, and the population
    share as a reference line. Columns: ``country``, ``estimate``, ``ci_low``, ``ci_high``."""
    import numpy as np
    import seaborn as sns

    v = table.values.dropna(subset=["estimate"]).copy()
    if v.empty:
        raise ReportError("no country has enough respondents to chart entrepreneurship",
                          code="report.chart_empty", where=table.id)
    v, left_out = _largest(v, "country")
    v = v.sort_values("estimate", ascending=True, kind="stable")
    v["pct"] = v["estimate"].astype(float) * 100
    labels = v["country"].astype(str).tolist()
    pal = _palette()
    with _style():
        fig, (ax,) = _figure(_rows_height(len(labels), 0.3, 0.9))
        y = np.arange(len(labels))
        lo = v["ci_low"].astype(float).to_numpy() * 100
        hi = v["ci_high"].astype(float).to_numpy() * 100
        ax.hlines(y, lo, hi, color=pal[0], linewidth=1.6)
        sns.scatterplot(x=v["pct"].to_numpy(), y=y, ax=ax, color=pal[0], s=28, zorder=3,
                        label=sample_label + ", 95 % CI")
        if population is not None:
            ax.axvline(population * 100, color=pal[3], linestyle="--", linewidth=1.1,
                       label=population_label)
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_xlim(left=0)
        ax.set_xlabel("% entrepreneurs (employers and own-account workers)")
        ax.set_ylabel("Country of residence")
        # below the plot: inside, it would cover some country's interval
        handles, names = ax.get_legend_handles_labels()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
        if left_out:
            ax.set_title(f"The {len(labels)} countries with most respondents; {left_out} more "
                         "in the table", fontsize=7.5, loc="left")
    return fig


def _largest(v, label_col: str, max_rows: int = MAX_ROWS):
    """At most ``max_rows`` rows of a chart by category: those with the most respondents
    (``n``; else the first), in their order; returns (rows, number left out). The
    table beside the chart keeps every row."""
    if len(v) <= max_rows:
        return v, 0
    import pandas as pd

    if "n" in v.columns:
        n = pd.to_numeric(v["n"], errors="coerce").fillna(0)
        keep = n.rank(method="first", ascending=False) <= max_rows
    else:
        keep = pd.Series(range(len(v)), index=v.index) < max_rows
    return v[keep.to_numpy()], int(len(v) - int(keep.sum()))


def _rows_height(rows: int, per_row: float, extra: float, max_height: float = MAX_HEIGHT_IN,
                 min_rows: int = 4) -> float:
    """Figure height for a chart with one line per category, at most ``max_height``
    (lines get thinner instead of the figure outgrowing the page)."""
    return min(extra + per_row * max(rows, min_rows), max_height)


def weights(table: DisclosedTable, **_):
    """Distribution of the weights per wave, from binned counts (``wave``, ``bin_low``,
    ``bin_high``, ``n``); bins with too few respondents are suppressed, not drawn."""
    import numpy as np

    v = table.values
    waves = list(dict.fromkeys(v["wave"].astype(str)))
    pal = _palette()
    with _style():
        ncols = min(max(len(waves), 1), 4)               # panels in rows of at most 4
        nrows = -(-max(len(waves), 1) // ncols)
        fig, axes = _figure(min(2.4 * nrows, MAX_HEIGHT_IN), ncols=ncols, nrows=nrows)
        for ax in axes[len(waves):]:
            ax.set_visible(False)
        for i, (ax, w) in enumerate(zip(axes, waves)):
            g = v[(v["wave"].astype(str) == w)].dropna(subset=["n"])
            lo = g["bin_low"].to_numpy(float)
            width = g["bin_high"].to_numpy(float) - lo
            ax.bar(lo, g["n"].to_numpy(float), width=width, align="edge",
                   color=pal[i % len(pal)], edgecolor="white", linewidth=0.3)
            ax.set_title(f"Wave {w}")
            ax.set_xlabel("Weight (mean = 1)")
            if i % ncols == 0:
                ax.set_ylabel("Respondents")
            ax.set_ylim(bottom=0)
            ax.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
            if len(lo):
                ax.set_xlim(0, float(np.max(lo + width)) * 1.03)
    return fig


def returns_by_region(table: DisclosedTable, *, overall: float | None = None, **_):
    """Share returned to Russia by host region with 95 % CIs and the overall share as a dashed
    line (the panel section). Columns: ``region``, ``estimate``, ``ci_low``, ``ci_high``."""
    import numpy as np
    import seaborn as sns

    v = table.values.dropna(subset=["estimate"]).copy()
    if v.empty:
        raise ReportError("no host region has enough returnees to chart", code="report.chart_empty",
                          where=table.id)
    v = v.sort_values("estimate", ascending=True, kind="stable")
    labels = v["region"].astype(str).tolist()
    pal = _palette()
    with _style():
        fig, (ax,) = _figure(0.9 + 0.3 * max(len(labels), 4))
        y = np.arange(len(labels))
        ax.hlines(y, v["ci_low"].astype(float) * 100, v["ci_high"].astype(float) * 100, color=pal[0],
                  linewidth=1.6)
        sns.scatterplot(x=v["estimate"].astype(float).to_numpy() * 100, y=y, ax=ax, color=pal[0], s=28,
                        zorder=3, label="Re-interviewed (attrition weights), 95 % CI")
        if overall is not None:
            ax.axvline(overall * 100, color=pal[3], linestyle="--", linewidth=1.1, label="All respondents")
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_xlim(left=0)
        ax.set_xlabel("% living in Russia again")
        ax.set_ylabel("Region (baseline)")
        handles, names = ax.get_legend_handles_labels()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig


VERDICT_COLOURS = {"supported": "#1a7f37", "not supported": "#b00020",
                   "inconclusive": "#6e7781", "not evaluable": "#bbbbbb", "": "#1f4e79"}


def forest(table: DisclosedTable, **_):
    """Forest plot: one panel per claim (or indicator), one row per group (All, then the
    waves), the value with its 95 % interval, the panel's threshold as a dashed line;
    points coloured by verdict. Columns: ``panel, title, group, value, ci_low, ci_high,
    ref, verdict, xlabel`` (display units)."""
    import textwrap

    import numpy as np
    from matplotlib.lines import Line2D

    v = table.values
    panels = list(dict.fromkeys(v["panel"].astype(str)))
    if not panels:
        raise ReportError("nothing to draw in the forest plot", code="report.chart_empty",
                          where=table.id)
    groups = list(dict.fromkeys(v["group"].astype(str)))
    groups = (["All"] if "All" in groups else []) + [g for g in groups if g != "All"]
    ncols = 1 if len(panels) <= 3 else 2          # two columns: the plot fits page 2
    nrows = -(-len(panels) // ncols)
    row_h = 0.14 * len(groups) + 0.72
    with _style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(WIDTH_IN, min(0.45 + row_h * nrows, 9.2)), dpi=DPI,
                     layout="constrained")
        grid = fig.subplots(nrows, ncols, squeeze=False)
        axes = [grid[i // ncols, i % ncols] for i in range(len(panels))]
        for ax in grid.ravel()[len(panels):]:
            ax.set_visible(False)
        for ax, pid in zip(axes, panels):
            g = v[v["panel"].astype(str) == pid]
            first = g.iloc[0]
            y = {name: i for i, name in enumerate(groups[::-1])}
            val = g["value"].to_numpy(float)
            lo = g["ci_low"].to_numpy(float)
            hi = g["ci_high"].to_numpy(float)
            ys = np.array([y[str(x)] for x in g["group"]], dtype=float)
            cols = [VERDICT_COLOURS.get(str(x), "#1f4e79") for x in g["verdict"]]
            ok = np.isfinite(lo) & np.isfinite(hi)
            for yi, a, b, c in zip(ys[ok], lo[ok], hi[ok], np.array(cols, dtype=object)[ok]):
                ax.plot([a, b], [yi, yi], color=c, linewidth=1.6, solid_capstyle="butt")
            fin = np.isfinite(val)
            ax.scatter(val[fin], ys[fin], c=np.array(cols, dtype=object)[fin].tolist(), s=18,
                       zorder=3)
            ref = float(first["ref"]) if first["ref"] == first["ref"] else None
            if ref is not None:
                ax.axvline(ref, color="black", linestyle="--", linewidth=0.9)
            ax.set_yticks(list(y.values()))
            ax.set_yticklabels(list(y.keys()))
            ax.set_ylim(-0.6, len(groups) - 0.4)
            xs = np.r_[lo[ok], hi[ok], val[fin], [ref] if ref is not None else []]
            if xs.size:
                span = float(xs.max() - xs.min()) or abs(float(xs.max())) or 1.0
                ax.set_xlim(float(xs.min()) - 0.08 * span, float(xs.max()) + 0.08 * span)
            # first line: the statement, shortened to the panel's width; then the test
            head, _, test = str(first["title"]).partition("\n")
            head = textwrap.shorten(head, 105 if ncols == 1 else 50, placeholder=" …")
            ax.set_title(head + (f"\n{test}" if test else ""), loc="left", fontsize=7)
            ax.tick_params(axis="both", labelsize=7)
            ax.set_xlabel(str(first["xlabel"]), fontsize=7, labelpad=1)
            ax.grid(axis="y", visible=False)
        used = [k for k in VERDICT_COLOURS if k and k in set(v["verdict"].astype(str))]
        if used:
            fig.legend(handles=[Line2D([0], [0], color=VERDICT_COLOURS[k], marker="o",
                                       linewidth=1.6, label=k) for k in used]
                       + [Line2D([0], [0], color="black", linestyle="--", linewidth=0.9,
                                 label="threshold")],
                       loc="outside lower center", ncol=len(used) + 1, frameon=False)
    return fig


CHARTS = {
    "returns_by_region": returns_by_region,
    "forest": forest,
    "age_pyramid": age_pyramid,
    "education": education,
    "entrepreneurship_by_country": entrepreneurship_by_country,
    "weights": weights,
}


def draw(chart) -> "object":
    """Draw a :class:`~.document.DisclosedChart`; returns a matplotlib Figure."""
    try:
        fn = CHARTS[chart.kind]
    except KeyError:
        raise ReportError(f"unknown chart kind {chart.kind!r}", code="report.chart_kind",
                          hint=f"use one of {sorted(CHARTS)}") from None
    return fn(chart.table, **chart.options)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Serialise a figure deterministically (no dates, no software stamp)."""
    import matplotlib as mpl

    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    elif fmt == "svg":
        with mpl.rc_context({"svg.hashsalt": _SVG_SALT, "svg.fonttype": "path"}):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    else:
        raise ReportError(f"unknown chart format {fmt!r}", code="report.chart_format",
                          hint="use png or svg")
    return buf.getvalue()


def figure_size_in(fig) -> tuple[float, float]:
    w, h = fig.get_size_inches()
    return float(w), float(h)
