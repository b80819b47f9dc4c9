"""CLI sub-commands, one module each; every module defines ``register(app)``.

Modules here must not import pandas, statsmodels, matplotlib or reportlab at import time.
"""
