"""CLI sub-commands, one module each; every module defines ``register(app)``.

Modules here must not import pandas, statsmodels, matplotlib or reportlab at import time.
"""


def console(*, stderr: bool = False, soft_wrap: bool = True):
    """The commands' rich console. Not a terminal (piped, logged, CI): 120 columns, so that
    tables are not squeezed into 80 and cut."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, soft_wrap=soft_wrap, stderr=stderr,
                   width=None if stream.isatty() else 120)
