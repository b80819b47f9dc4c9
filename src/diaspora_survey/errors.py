"""One error family for everything a user can get wrong.

Every error carries a stable ``code`` (e.g. ``codebook.unknown_column``), the place
(``where``: file, line, variable or category) and a ``hint`` saying what to do. The CLI
renders them as one message and exits with status 2; it never shows a traceback for them.
"""
from __future__ import annotations


class DiasporaSurveyError(Exception):
    """Base class: ``code`` is stable and documented, ``where`` and ``hint`` are for people."""

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, where: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.where = where
        self.hint = hint

    def render(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            head += f"\n  hint: {self.hint}"
        return head

    def __str__(self) -> str:  # shown by pytest and plain Python too
        return self.render()


class OutputError(DiasporaSurveyError):
    """An output file cannot be written: the path is a folder, or not writable."""
    default_code = "output.cannot_write"


class InputFileError(DiasporaSurveyError):
    """A raw file cannot be read: missing, empty, truncated, wrong format or encoding."""
    default_code = "input.unreadable"


class CodebookError(DiasporaSurveyError):
    """A codebook is malformed or does not fit its wave."""
    default_code = "codebook.invalid"


class HarmonisationError(DiasporaSurveyError):
    """Harmonisation found something it may not decide alone (e.g. unmapped codes with --strict)."""
    default_code = "harmonise.failed"


class ProjectError(DiasporaSurveyError):
    """The project file (diaspora-survey.toml) is missing or malformed."""
    default_code = "project.invalid"


class DesignError(DiasporaSurveyError):
    """A survey design cannot be built or used as asked (e.g. a lonely PSU with lonely_psu='fail')."""
    default_code = "design.invalid"


class EstimationError(DiasporaSurveyError):
    """An estimate cannot be computed as asked (unknown variable, wrong type, empty domain)."""
    default_code = "estimate.invalid"


class WeightingError(DiasporaSurveyError):
    """Targets or weights are unusable, or an adjustment did not converge."""
    default_code = "weighting.invalid"


class ReferenceDataError(DiasporaSurveyError):
    """A reference population table is missing, malformed or lacks a needed figure."""
    default_code = "reference.invalid"


class ReportError(DiasporaSurveyError):
    """A report cannot be produced."""
    default_code = "report.failed"


class PanelError(DiasporaSurveyError):
    """Panel waves cannot be linked or analysed as asked (no link key, strict linking problems)."""
    default_code = "panel.invalid"


class EngineError(DiasporaSurveyError):
    """An out-of-core or distributed engine cannot be used as asked.

    Codes: ``engine.not_installed``, ``engine.unknown``, ``engine.mismatch``,
    ``engine.source_missing``, ``engine.unreadable``, ``engine.unknown_column``,
    ``engine.not_numeric``, ``engine.negative``, ``engine.null``, ``engine.failed``.
    """
    default_code = "engine.failed"
