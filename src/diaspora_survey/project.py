"""The project file ``diaspora-survey.toml``: waves and their codebooks, harmonisation,
weighting, reference population, comparisons and report options.

Paths in the file are relative to the project directory (the folder holding the file).
Unknown keys are errors (an option is either honoured or rejected). A file the
configuration points to that does not exist yet (weighting targets, claims) is only an
error when the step that needs it runs.

``diaspora-survey init DIR`` writes a commented template (:data:`TEMPLATE`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ProjectError

FILENAME = "diaspora-survey.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectInfo(_Strict):
    title: str = "Untitled survey project"
    synthetic: bool = False
    description: str | None = None


class WaveConfig(_Strict):
    """One wave: ``id`` (unique; used as the ``wave`` category), raw ``file``, ``codebook``;
    optional import overrides ``encoding``, ``sep``, ``decimal`` passed to ``read_wave``."""

    id: str
    file: str
    codebook: str
    label: str | None = None
    encoding: str | None = None
    sep: str | None = None
    decimal: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, v):
        return str(v) if isinstance(v, (int, float)) else v


class HarmoniseConfig(_Strict):
    """``crosswalks``: project CSVs extending the packaged crosswalks; ``strict``: unmapped codes
    are errors; ``age_bands``: bands of the derived ``age_group`` as [low, high] pairs
    (high inclusive; omit high for the open top band); ``output``: the parquet file written
    by ``diaspora-survey harmonise``."""

    crosswalks: list[str] = Field(default_factory=list)
    strict: bool = False
    age_bands: list[list[int]] | None = None
    output: str = "build/harmonised.parquet"

    @field_validator("age_bands")
    @classmethod
    def _bands(cls, v):
        if v is None:
            return v
        prev_hi = None
        for i, b in enumerate(v):
            if len(b) not in (1, 2):
                raise ValueError(f"band {i + 1} must be [low, high] or [low] for the open top band")
            if len(b) == 2 and b[0] > b[1]:
                raise ValueError(f"band {b}: low is above high")
            if len(b) == 1 and i != len(v) - 1:
                raise ValueError("only the last band may be open ([low])")
            if prev_hi is not None and b[0] <= prev_hi:
                raise ValueError(f"band {b} overlaps the previous band")
            prev_hi = b[1] if len(b) == 2 else None
        return v

    def bands(self):
        from .harmonise import schema

        if not self.age_bands:
            return schema.DEFAULT_AGE_BANDS
        return tuple((b[0], b[1] if len(b) == 2 else None) for b in self.age_bands)


class WeightingConfig(_Strict):
    """``[weighting]``: read by :func:`diaspora_survey.weighting.weight_project` (see
    :func:`diaspora_survey.weighting.targets_from_project` for the meaning of each key)."""

    targets: str = "codebooks/targets.yaml"
    margins: dict[str, Any] | None = None       # inline targets ([weighting.margins]) instead of a file
    totals: dict[str, Any] | None = None        # with margins: numeric calibration targets ([weighting.totals])
    method: Literal["rake", "poststratify", "calibrate"] = "rake"
    calibration: Literal["linear", "raking", "logit"] | None = None
    bounds: list[float] | None = None            # on g = new / base weight (rake, calibrate)
    base_weight: str | None = None
    pooling: Literal["proportional", "equal"] = "proportional"
    trim_upper: float | None = 5.0
    trim_lower: float | None = None
    trim_relative: bool = True
    max_iter: int = 100
    tolerance: float = 1e-8
    unmatched: Literal["error", "keep_base"] | None = None
    empty: Literal["error", "drop", "collapse"] | None = None


class ReferenceConfig(_Strict):
    population: str = "russia"
    tables: list[str] = Field(default_factory=list)
    min_age: int = 18
    max_age: int = 0


class CompareConfig(_Strict):
    claims: str = "codebooks/claims.yaml"
    by: list[str] = Field(default_factory=lambda: ["wave"])


class ReportConfig(_Strict):
    output: str = "reports/diaspora-report.pdf"
    #: raised, never lowered below 10 from the project file (the library's opt-out is
    #: ``Report(min_cell_size=…)``; docs/disclosure.md)
    min_cell_size: int = Field(10, ge=10)
    formats: list[str] = Field(default_factory=lambda: ["pdf"])


class ProjectConfig(_Strict):
    project: ProjectInfo = Field(default_factory=ProjectInfo)
    waves: list[WaveConfig] = Field(default_factory=list)
    harmonise: HarmoniseConfig = Field(default_factory=HarmoniseConfig)
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


@dataclass
class ProjectHarmonised:
    """All waves harmonised: stacked ``data`` (categorical ``wave``), stacked ``exclusions``,
    all ``issues``, a ``summary`` per wave and variable, and the per-wave results."""

    data: Any
    exclusions: Any
    issues: list
    summary: Any
    waves: dict = field(default_factory=dict)

    @property
    def unmapped(self) -> int:
        return sum(h.unmapped for h in self.waves.values())


def _line_of(text: str, key: str) -> int | None:
    rx = re.compile(rf"^\s*{re.escape(key)}\s*=", re.M)
    m = rx.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


class Project:
    """A project directory with its ``diaspora-survey.toml``.

    >>> proj = Project.load(".")                 # doctest: +SKIP
    >>> proj.harmonised()                        # all waves stacked, column "wave"
    """

    def __init__(self, root: Path, config: ProjectConfig, file: Path):
        self._root = root
        self.config = config
        self.file = file
        self._harmonised: ProjectHarmonised | None = None
        self._codebooks: dict | None = None

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = ".") -> "Project":
        """Load ``path/diaspora-survey.toml`` (or the toml file given)."""
        import tomllib

        p = Path(path)
        file = p if p.suffix == ".toml" and not p.is_dir() else p / FILENAME
        if not file.exists():
            raise ProjectError("no project file found", code="project.not_found", where=str(file),
                               hint="run the command inside a project folder, or create one with "
                                    "`diaspora-survey init DIR`")
        text = file.read_text(encoding="utf-8-sig")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as ex:
            m = re.search(r"at line (\d+)", str(ex))
            raise ProjectError(f"not valid TOML: {ex}", code="project.toml_syntax",
                               where=f"{file}:{m.group(1)}" if m else str(file),
                               hint="check quoting and brackets near that line") from None
        try:
            config = ProjectConfig.model_validate(raw)
        except ValidationError as ex:
            err = ex.errors()[0]
            loc = [str(x) for x in err.get("loc", ())]
            key = next((x for x in reversed(loc) if not x.isdigit()), "")
            line = _line_of(text, key) if key else None
            where = f"{file}:{line}" if line else str(file)
            dotted = ".".join(loc)
            if err.get("type") == "extra_forbidden":
                raise ProjectError(f"unknown key {dotted!r}", code="project.unknown_key", where=where,
                                   hint="see the template written by `diaspora-survey init` for the "
                                        "allowed keys") from None
            raise ProjectError(f"{dotted}: {err.get('msg')}", code="project.invalid", where=where,
                               hint="see the template written by `diaspora-survey init`") from None
        seen: dict[str, int] = {}
        for i, w in enumerate(config.waves):
            if w.id in seen:
                line = None
                for mt in re.finditer(rf"^\s*id\s*=\s*[\"']?{re.escape(w.id)}[\"']?\s*$", text, re.M):
                    line = text.count("\n", 0, mt.start()) + 1
                raise ProjectError(f"wave id {w.id!r} is used twice", code="project.duplicate_wave",
                                   where=f"{file}:{line}" if line else str(file),
                                   hint="give every [[waves]] entry its own id")
            seen[w.id] = i
        return cls(file.parent.resolve(), config, file)

    # -- accessors --------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    @property
    def title(self) -> str:
        return self.config.project.title

    @property
    def synthetic(self) -> bool:
        return self.config.project.synthetic

    @property
    def waves(self) -> list[WaveConfig]:
        return self.config.waves

    @property
    def wave_ids(self) -> list[str]:
        return [w.id for w in self.config.waves]

    @property
    def harmonise_config(self) -> HarmoniseConfig:
        return self.config.harmonise

    @property
    def weighting(self) -> WeightingConfig:
        return self.config.weighting

    @property
    def reference(self) -> ReferenceConfig:
        return self.config.reference

    @property
    def compare(self) -> CompareConfig:
        return self.config.compare

    @property
    def report(self) -> ReportConfig:
        return self.config.report

    def path(self, rel: str | Path) -> Path:
        """Absolute path of ``rel`` (relative to the project directory; absolute paths kept)."""
        p = Path(rel)
        return p if p.is_absolute() else self._root / p

    def wave(self, wave_id: str) -> WaveConfig:
        for w in self.config.waves:
            if w.id == wave_id:
                return w
        raise ProjectError(f"no wave {wave_id!r} in the project", code="project.unknown_wave",
                           where=str(self.file), hint="waves: " + ", ".join(self.wave_ids))

    def _display(self, p: Path) -> str:
        try:
            return str(p.relative_to(self._root))
        except ValueError:
            return str(p)

    # -- steps --------------------------------------------------------------------------------------

    def crosswalks(self):
        from .harmonise import crosswalks

        return crosswalks.load([self.path(c) for c in self.config.harmonise.crosswalks])

    def codebook(self, wave_id: str):
        """The wave's :class:`~diaspora_survey.harmonise.codebook.Codebook`, loaded and checked against the
        project file: its ``wave`` must equal the wave id and its ``file`` (if given) the wave's file."""
        if self._codebooks is not None and wave_id in self._codebooks:
            return self._codebooks[wave_id]
        from .harmonise.codebook import Codebook
        from .errors import CodebookError

        w = self.wave(wave_id)
        p = self.path(w.codebook)
        cb = Codebook.load(p, display=self._display(p))
        if cb.wave != w.id:
            raise CodebookError(f"codebook is for wave {cb.wave!r} but the project lists it "
                                f"under wave {w.id!r}", code="codebook.wave_mismatch",
                                where=cb.where("wave"),
                                hint="make 'wave:' in the codebook equal to the id in "
                                     "diaspora-survey.toml")
        if cb.file is not None and self.path(cb.file).resolve() != self.path(w.file).resolve():
            raise CodebookError(f"codebook names file {cb.file!r} but the project uses {w.file!r}",
                                code="codebook.file_mismatch", where=cb.where("file"),
                                hint="fix one of them (the project file decides which file is read)")
        return cb

    def codebooks(self) -> dict:
        """``{wave id: Codebook}``; the codebook's ``wave`` must match the project's wave id."""
        if self._codebooks is None:
            self._codebooks = {w.id: self.codebook(w.id) for w in self.config.waves}
        return self._codebooks

    def read_wave(self, wave_id: str):
        """The raw wave as :class:`~diaspora_survey.io.RawWave`, with the import overrides."""
        from .errors import InputFileError
        from .io import read_wave

        w = self.wave(wave_id)
        p = self.path(w.file)
        if not p.exists():
            raise InputFileError("raw file not found", code="input.not_found", where=self._display(p),
                                 hint=f"check 'file' of wave {w.id!r} in {FILENAME}")
        opts = {k: getattr(w, k) for k in ("encoding", "sep", "decimal") if getattr(w, k) is not None}
        return read_wave(p, **opts)

    def raw_waves(self) -> dict:
        """``{wave id: RawWave}`` for all waves, in project order."""
        return {w.id: self.read_wave(w.id) for w in self.config.waves}

    def harmonise_all(self, *, strict: bool | None = None, progress=None) -> ProjectHarmonised:
        """Harmonise every wave and stack them; cached per strictness."""
        import pandas as pd

        from .harmonise.apply import harmonise, stack

        strict = self.config.harmonise.strict if strict is None else strict
        if self._harmonised is not None and getattr(self._harmonised, "_strict", None) == strict:
            return self._harmonised
        cbs = self.codebooks()
        cws = self.crosswalks()
        results = {}
        for w in self.config.waves:
            raw = self.read_wave(w.id)
            results[w.id] = harmonise(raw, cbs[w.id], strict=strict, crosswalks=cws,
                                      age_bands=self.config.harmonise.bands(), wave_id=w.id)
            if progress is not None:
                progress(w.id, results[w.id])
        data, excl = stack(list(results.values()), self.wave_ids)
        issues = [i for h in results.values() for i in h.issues]
        summary = pd.concat([h.summary for h in results.values()], ignore_index=True) if results else \
            pd.DataFrame(columns=["wave", "variable", "n", "missing", "unmapped", "out_of_range"])
        out = ProjectHarmonised(data=data, exclusions=excl, issues=issues, summary=summary, waves=results)
        out._strict = strict  # type: ignore[attr-defined]
        self._harmonised = out
        return out

    def harmonised(self, *, strict: bool | None = None):
        """All waves harmonised and stacked (DataFrame with a categorical ``wave`` column)."""
        return self.harmonise_all(strict=strict).data

    def require(self, rel: str | Path, what: str) -> Path:
        """The absolute path of a file a step needs; a clear error if it does not exist."""
        p = self.path(rel)
        if not p.exists():
            raise ProjectError(f"{what} file not found", code="project.missing_file",
                               where=self._display(p), hint=f"create it or fix the path in {FILENAME}")
        return p

    def __repr__(self) -> str:
        return f"Project({str(self._root)!r}, title={self.title!r}, waves={self.wave_ids})"


TEMPLATE = '''\
# diaspora-survey project file. Paths are relative to this folder.
# Docs: docs/codebook.md (codebooks), `diaspora-survey --help` (commands).

[project]
title = "{title}"
synthetic = false            # true if the data are synthetic; every report then says so

# One [[waves]] block per survey wave. `id` becomes the value of the `wave` column.
# Put the raw file into raw/ and write a codebook draft with
#   diaspora-survey codebook draft raw/FILE -o codebooks/NAME.yaml
#
# [[waves]]
# id = "2022-03"
# file = "raw/2022-03_wave1.sav"
# codebook = "codebooks/2022-03_wave1.yaml"
# encoding = "WINDOWS-1251"  # optional import overrides: encoding, sep, decimal

[harmonise]
crosswalks = []              # your CSVs extending the packaged crosswalks (label,code[,crosswalk])
strict = false               # true: unmapped codes are errors instead of reported NA
# age_bands = [[18, 24], [25, 34], [35, 44], [45, 54], [55, 64], [65]]

[weighting]
targets = "codebooks/targets.yaml"
method = "rake"              # rake | poststratify | calibrate
pooling = "proportional"     # proportional | equal
trim_upper = 5.0             # relative to the mean weight; optional
trim_lower = 0.2             # optional
max_iter = 100
tolerance = 1e-8
# calibration = "linear"     # with method = "calibrate": linear | raking | logit
# bounds = [0.3, 3.0]        # on g = new / base weight (rake: capped raking; calibrate)
# base_weight = "weight"     # a base-weight column of the harmonised data
# unmatched = "error"        # rake / poststratify: error | keep_base
# empty = "error"            # target categories without respondents: error | drop | collapse
# Instead of a targets file, the targets inline (then remove `targets = ...` above):
# [weighting.margins]
# sex = {{female = 0.52, male = 0.48}}
# [weighting.totals]         # numeric auxiliaries, method = "calibrate" only
# age = {{mean = 37.5}}

[reference]
population = "russia"
tables = []                  # your reference tables (CSV/YAML)
min_age = 18
max_age = 0                  # 0 = no upper limit

[compare]
claims = "codebooks/claims.yaml"
by = ["wave"]

[report]
output = "reports/diaspora-report.pdf"
min_cell_size = 10
formats = ["pdf"]
'''


__all__ = ["Project", "ProjectConfig", "ProjectHarmonised", "WaveConfig", "TEMPLATE", "FILENAME"]
