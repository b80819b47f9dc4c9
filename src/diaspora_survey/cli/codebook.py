"""``diaspora-survey codebook draft FILE -o codebooks/NAME.yaml`` and ``codebook check``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def check_project(project_dir: Path, console) -> int:
    """Validate every codebook of the project against its file; print findings.

    Returns the exit status: 0 all codebooks valid and every value mapped, 1 codebooks valid
    but unmapped or out-of-range values found, 2 a codebook (or file) has an error.
    """
    from rich.markup import escape
    from rich.table import Table

    from .._util import mask_value
    from ..errors import DiasporaSurveyError
    from ..harmonise.apply import harmonise
    from ..project import Project

    proj = Project.load(project_dir)
    cws = proj.crosswalks()
    status = 0
    if not proj.waves:
        console.print(f"no waves in {proj.file.name} yet: add a \\[\\[waves]] block per survey file")
        return 0
    for w in proj.waves:
        cb_path = proj.path(w.codebook)
        try:
            cb = proj.codebook(w.id)
            raw = proj.read_wave(w.id)
            h = harmonise(raw, cb, crosswalks=cws, age_bands=proj.harmonise_config.bands(), wave_id=w.id)
        except DiasporaSurveyError as err:
            console.print(f"[red]✗[/red] wave {escape(w.id)}: [bold]{escape(err.where or '')}[/bold] "
                          f"{escape(err.message)}" + (f"\n    hint: {escape(err.hint)}" if err.hint else ""),
                          highlight=False, soft_wrap=True)
            status = 2
            continue
        n_rows = len(raw.data)
        table = Table(title=f"wave {w.id} — {proj._display(cb_path)} ({n_rows:,} rows, "
                            f"{len(h.exclusions):,} excluded)", title_justify="left")
        for col, just in (("variable", "left"), ("source", "left"), ("n", "right"), ("missing", "right"),
                          ("missing %", "right"), ("unmapped", "right"), ("out of range", "right")):
            table.add_column(col, justify=just)
        for r in h.summary.itertuples(index=False):
            spec = cb.variables[r.variable]
            tot = r.n + r.missing + r.unmapped + r.out_of_range     # = rows kept
            table.add_row(r.variable, ", ".join(spec.sources), f"{r.n:,}", f"{r.missing:,}",
                          f"{100 * r.missing / tot:.1f}" if tot else "–",
                          f"[red]{r.unmapped:,}[/red]" if r.unmapped else "0",
                          f"[yellow]{r.out_of_range:,}[/yellow]" if r.out_of_range else "0")
        console.print(table)
        for var, counts in h.rules.items():      # rows each rule took: to check a derivation by eye
            console.print(f"  {escape(var)}: rows per rule (first match wins)", highlight=False)
            for rule, k in counts.items():
                console.print(f"      {k:>7,}  {rule}", highlight=False, markup=False)
        findings = [i for i in h.issues if i.kind in ("unmapped", "unparsed", "out_of_range")]
        for i in findings:
            console.print(f"  [red]{i.kind}[/red] {i.variable} ({escape(i.where or '')}):", highlight=False)
            for val, c in list(i.values.items())[:20]:
                console.print(f"      {mask_value(val, c)}  ×{c}", highlight=False, markup=False)
            if len(i.values) > 20:
                console.print(f"      … {len(i.values) - 20} more", highlight=False)
        if findings:
            status = max(status, 1)
        else:
            console.print(f"[green]✓[/green] wave {w.id}: every value mapped")
    return status


def _print_choices(draft) -> None:
    """To stderr (the draft itself may go to stdout): per variable the column used with its
    confidence, or TODO, and the other candidates considered."""
    age_found = draft.choices["age"].column is not None
    for var, ch in draft.choices.items():
        if age_found and var in ("birth_year", "interview_date"):
            continue     # only needed to compute the age
        if ch.column is not None:
            line = f"{var:<18} ← {ch.column} ({ch.confidence:.2f})"
            others = [c for c in ch.candidates if c.column != ch.column]
        else:
            line = f"{var:<18}   TODO: {ch.note}"
            others = ch.candidates
        if others:
            line += "; considered " + ", ".join(f"{c.column} ({c.confidence:.2f})" for c in others)
        typer.echo(line, err=True)
    r = draft.employment_rules
    if r is not None:
        typer.echo(f"{'':<18}   employment_status by rules over {r.main}, {r.relation}"
                   + (f", {r.employees}" if r.employees else "") + " — check them", err=True)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Write and check codebooks (one YAML per wave).", no_args_is_help=True)

    @sub.command("draft")
    def draft_cmd(
        file: Path = typer.Argument(..., help="Raw survey file (.sav, .zsav, .csv, …)."),
        output: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="Codebook to write (default: print to the terminal)."),
        wave: Optional[str] = typer.Option(None, "--wave", help="Wave id (default: start of the file name)."),
        encoding: Optional[str] = typer.Option(None, "--encoding", help="Override the file's encoding."),
        sep: Optional[str] = typer.Option(None, "--sep", help="CSV separator override."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing codebook."),
    ) -> None:
        """Write a commented codebook draft: columns picked by their value labels, value ranges and variable labels (the candidates and their confidence are listed), maps pre-filled from the crosswalks, '# TODO' where the draft is not sure."""
        from .._util import atomic_write_text
        from ..harmonise.draft import draft_codebook
        from ..errors import CodebookError
        from ..io import read_wave

        opts = {k: v for k, v in (("encoding", encoding), ("sep", sep)) if v is not None}
        raw = read_wave(file, **opts)
        shown = str(file)
        cws = None
        from ..project import FILENAME, Project

        # inside a project (where -o points, or the current folder): the file's path relative to
        # the project folder, and the project's own crosswalks ([harmonise] crosswalks) in the draft
        start = output.resolve().parent if output is not None else Path.cwd().resolve()
        folder = next((f for f in (start, *start.parents) if (f / FILENAME).exists()), None)
        if folder is not None:
            try:
                shown = Path(file).resolve().relative_to(folder).as_posix()
            except ValueError:
                pass
            proj = Project.load(folder)
            cws = proj.crosswalks()
            if wave is None:    # the file is a wave of the project: use its id
                wave = next((w.id for w in proj.waves
                             if proj.path(w.file).resolve() == Path(file).resolve()), None)
        draft = draft_codebook(raw, wave_id=wave, file=shown, crosswalks=cws)
        text = draft.text
        _print_choices(draft)
        if output is None:
            typer.echo(text, nl=False)
            return
        if output.exists() and not output.is_dir() and not force:
            raise CodebookError("codebook already exists", code="codebook.exists", where=str(output),
                                hint="use --force to overwrite it, or choose another -o name")
        atomic_write_text(output, text, code="codebook.cannot_write")
        n_todo = draft.todos
        typer.echo(f"wrote {output}" + (f" — {n_todo} TODO(s) to check" if n_todo else ""))

    @sub.command("check")
    def check_cmd(
        project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder."),
    ) -> None:
        """Validate every codebook of the project against its file: unmapped codes with counts, values out of range, share missing per variable (exit 1 if values are unmapped)."""
        from rich.console import Console

        status = check_project(project, Console(highlight=False))
        if status:
            raise typer.Exit(status)

    app.add_typer(sub, name="codebook")
