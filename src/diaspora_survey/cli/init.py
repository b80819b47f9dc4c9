"""``diaspora-survey init DIR``: scaffold a new project."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def scaffold(directory: Path, title: str | None = None, force: bool = False) -> Path:
    """Create ``directory`` with a commented ``diaspora-survey.toml`` and empty ``raw/``,
    ``codebooks/`` and ``reports/``; returns the project file's path."""
    from .._util import atomic_write_text
    from ..errors import ProjectError
    from ..project import FILENAME, TEMPLATE

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ProjectError("exists and is not a folder", code="project.init_failed", where=str(directory),
                           hint="choose another name")
    toml = directory / FILENAME
    if toml.exists() and not force:
        raise ProjectError("a project file already exists", code="project.exists", where=str(toml),
                           hint="use --force to overwrite it (raw data and codebooks are left alone)")
    name = title or directory.resolve().name.replace("_", " ").replace("-", " ").strip() or "Survey project"
    try:
        for sub in ("raw", "codebooks", "reports"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        keep = directory / "reports" / ".gitkeep"
        if not keep.exists():
            keep.touch()
        atomic_write_text(toml, TEMPLATE.format(title=_toml_text(name)))
    except OSError as ex:
        raise ProjectError(f"cannot create the project: {ex.strerror or ex}", code="project.init_failed",
                           where=str(ex.filename or directory),
                           hint="choose a folder you can write to") from None
    return toml


def _toml_text(text: str) -> str:
    """``text`` safe inside a TOML basic string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        directory: Path = typer.Argument(..., help="Folder of the new project (created if needed)."),
        title: Optional[str] = typer.Option(None, "--title", help="Project title."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing project file."),
    ) -> None:
        """Create a new project: a commented diaspora-survey.toml and empty raw/, codebooks/, reports/."""
        toml = scaffold(directory, title, force)
        typer.echo(f"created {toml}")
        typer.echo(f"next: put survey files into {directory / 'raw'} and run "
                   f"`diaspora-survey codebook draft {directory / 'raw' / 'FILE'} -o "
                   f"{directory / 'codebooks' / 'NAME.yaml'}`")
