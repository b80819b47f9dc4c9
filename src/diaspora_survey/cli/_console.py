"""The commands' console and error rendering.

Command modules (one per command, each defining ``register(app)``) must not import pandas,
statsmodels, matplotlib or reportlab at import time.
"""


def console(*, stderr: bool = False, soft_wrap: bool = True):
    """The commands' rich console. Not a terminal (piped, logged, CI): 120 columns, so that
    tables are not squeezed into 80 and cut."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, soft_wrap=soft_wrap, stderr=stderr,
                   width=None if stream.isatty() else 120)


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
