"""The project file ``diaspora-survey.toml``: waves and their codebooks, harmonisation,
weighting, reference population, comparisons and report options.

Paths in the file are relative to the project directory (the folder holding the file).
Unknown keys are errors (an option is either honoured or rejected). A file the
configuration points to that does not exist yet (weighting targets, claims) is only an
error when the step that needs it runs.

``diaspora-survey init DIR`` writes a commented template (:data:`TEMPLATE`).
"""
from __future__ import annotations

import errno
import os
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
    """``sample``: what the respondents are, in the report's titles and legends ("Emigrant
    sample", "ESS respondents"); ``sample_design``: how they were sampled, for the methods
    text ("online non-probability sample"); both neutral by default."""

    title: str = "Untitled survey project"
    synthetic: bool = False
    description: str | None = None
    allow_outside: bool = False   # true: paths of the project file may point outside its folder
    sample: str = "Sample"
    sample_design: str | None = None


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
    host_regions: list[str] = Field(default_factory=list)   # CSVs regrouping countries into host regions
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
    method: Literal["rake", "poststratify", "calibrate", "none"] = "rake"
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
    """``[reference]``: population, its ``label`` (the population's name in titles and
    legends; default: the reference population's own title, e.g. "Russian Federation, general
    population"), project tables, the frame, and fieldwork matching: ``year`` (fieldwork year
    when the data have neither interview dates nor date-like wave ids; 0 = none),
    ``max_year_gap`` (a table further from fieldwork gets a caveat and makes claims
    inconclusive), ``accept`` (``year_gap``, ``universe``: gaps the project explicitly accepts —
    the caveat stays, claims keep their verdict)."""

    population: str = "russia"
    label: str | None = None
    tables: list[str] = Field(default_factory=list)
    min_age: int = 18
    max_age: int = 0
    year: int = 0
    max_year_gap: int = Field(default=3, ge=0)
    accept: list[Literal["year_gap", "universe"]] = Field(default_factory=list)

    def compare_options(self) -> dict:
        """Keyword arguments of :func:`diaspora_survey.compare.comparison.compare`."""
        return {"min_age": self.min_age, "max_age": self.max_age or None,
                "year": self.year or None, "max_year_gap": self.max_year_gap,
                "accept": tuple(self.accept)}


class CompareConfig(_Strict):
    """``[compare]``: claims file, ``by`` groups and project indicators
    (``[[compare.indicators]]``, see :func:`diaspora_survey.compare.indicators.from_config`)."""

    claims: str = "codebooks/claims.yaml"
    by: list[str] = Field(default_factory=lambda: ["wave"])
    indicators: list[dict[str, Any]] = Field(default_factory=list)


class ReportConfig(_Strict):
    output: str = "reports/diaspora-report.pdf"
    #: raised, never lowered below 10 from the project file (the library's opt-out is
    #: ``Report(min_cell_size=…)``; docs/disclosure.md)
    min_cell_size: int = Field(10, ge=10)
    formats: list[str] = Field(default_factory=lambda: ["pdf"])


class PanelConfig(_Strict):
    """``[panel]``: ``waves`` linked by ``key`` (a harmonised string variable, default
    ``panel_id``), in time order — the first is the baseline; ``followups``: panel-only waves
    (``[[panel.followups]]`` with id, file, codebook) that are linked but not part of the
    cross-sectional steps (weighting, comparisons); ``strict``: linking problems are errors;
    ``attrition``: how the retained panel is reweighted — ``propensity`` (logistic response
    propensity, optionally in ``classes`` cells), ``rake`` (to the baseline's weighted margins)
    or ``propensity+rake``; ``covariates``: the baseline variables of the model and the margins;
    ``classes``: 0 = one weight per respondent, k = k propensity classes; ``trim_upper``:
    relative to the mean weight."""

    key: str = "panel_id"
    waves: list[str] = Field(default_factory=list)
    followups: list[WaveConfig] = Field(default_factory=list)
    strict: bool = False
    attrition: Literal["propensity", "rake", "propensity+rake"] = "propensity+rake"
    covariates: list[str] = Field(default_factory=lambda: ["age_group", "sex", "host_region"])
    classes: int = 0
    min_cell: int = 20
    trim_upper: float | None = 5.0


class DataConfig(_Strict):
    """``[data]``: ``engine`` — where the weight step and ``estimate`` compute: ``pandas`` (in
    memory, the default), ``duckdb`` (out of core, embedded) or ``dask`` (distributed); the
    command-line ``--engine`` of ``weight`` and ``estimate`` overrides it (docs/scale.md).
    ``chunk_rows`` — harmonise (the ``harmonise`` command and the harmonise step of ``run``,
    ``weight``, ``compare``, ``report``) that many rows at a time, each chunk written as a parquet
    row group, for waves larger than memory; ``--chunk-rows`` of ``harmonise`` overrides it.
    Panel linking, comparisons and the report run in memory."""

    engine: Literal["pandas", "duckdb", "dask"] = "pandas"
    chunk_rows: int | None = None

    @field_validator("chunk_rows", mode="before")
    @classmethod
    def _chunk_rows(cls, v):
        if v is None:
            return v
        from .errors import InputFileError
        from .io.chunks import check_chunk_rows

        try:
            return check_chunk_rows(v)            # the one rule (also for --chunk-rows and the API)
        except InputFileError as ex:
            raise ValueError(f"{ex.message} (e.g. chunk_rows = 200000)") from None


class ProjectConfig(_Strict):
    project: ProjectInfo = Field(default_factory=ProjectInfo)
    data: DataConfig = Field(default_factory=DataConfig)
    waves: list[WaveConfig] = Field(default_factory=list)
    harmonise: HarmoniseConfig = Field(default_factory=HarmoniseConfig)
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    panel: PanelConfig | None = None


@dataclass
class ProjectHarmonised:
    """All waves harmonised: stacked ``data`` (categorical ``wave``), stacked ``exclusions``,
    all ``issues``, a ``summary`` per wave and variable, and the per-wave results."""

    data: Any
    exclusions: Any
    issues: list
    summary: Any
    waves: dict = field(default_factory=dict)
    shape: tuple | None = None      # (rows, columns) of the stacked data when ``data`` is not held
    notes: list = field(default_factory=list)

    @property
    def unmapped(self) -> int:
        return sum(h.unmapped for h in self.waves.values())

    @property
    def n_rows(self) -> int:
        return len(self.data) if self.data is not None else int(self.shape[0])

    @property
    def n_columns(self) -> int:
        return self.data.shape[1] if self.data is not None else int(self.shape[1])


class HarmonisedChunks:
    """The waves of a project harmonised chunk by chunk (:meth:`Project.harmonise_in_chunks`).

    :meth:`frames` yields the stacked data (the frame :meth:`Project.harmonise_all` returns) one
    chunk at a time, wave by wave, every chunk with the same columns and dtypes as
    :meth:`schema`; once they are exhausted, :attr:`result` holds the issues, exclusions and
    summary of all waves (a :class:`ProjectHarmonised` whose ``data`` is None) and :attr:`attrs`
    the stacked frame's ``attrs`` (``source_rows``)."""

    def __init__(self, project: "Project", runs: dict, stacker, notes: list):
        self.project, self.runs, self.stacker, self.notes = project, runs, stacker, notes
        self.result: ProjectHarmonised | None = None
        self.attrs: dict = {}

    def schema(self):
        """No rows; the stacked data's columns and dtypes."""
        wid = next(iter(self.runs))
        return self.stacker.frame(self.runs[wid].empty(), wid)

    def frames(self):
        import pandas as pd

        from .harmonise.apply import source_rows, stack_exclusions

        results, n = {}, 0
        for wid, run in self.runs.items():
            for part in run:
                n += len(part)
                yield self.stacker.frame(part, wid)
            h = run.finish()
            if h.rows == 0:
                raise self.project._empty_wave(wid, h.rows_read, len(h.exclusions))
            results[wid] = h
        order = self.project.wave_ids
        excl = stack_exclusions(list(results.values()), order)
        summary = pd.concat([h.summary for h in results.values()], ignore_index=True)
        self.attrs = {"source_rows": source_rows(list(results.values()))}
        self.result = ProjectHarmonised(data=None, exclusions=excl, issues=[i for h in results.values()
                                                                            for i in h.issues],
                                        summary=summary, waves=results,
                                        shape=(n, len(self.stacker.dtypes) + 1), notes=list(self.notes))


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

        from ._files import read_text_input

        if not isinstance(path, (str, Path)):
            raise ProjectError(f"a project folder or file is a path, not {type(path).__name__}",
                               code="project.bad_argument", hint="Project.load('.')")
        p = Path(path)
        file = p if p.suffix == ".toml" and not p.is_dir() else p / FILENAME
        if not file.exists() and not file.is_symlink():
            raise ProjectError("no project file found", code="project.not_found", where=str(file),
                               hint="run the command inside a project folder, or create one with "
                                    "`diaspora-survey init DIR`")
        text = read_text_input(file, what="project file", error=ProjectError, code="project",
                               max_bytes=1 << 20)
        try:
            raw = tomllib.loads(text)
        except ValueError as ex:   # tomllib.TOMLDecodeError; also integers of > 4300 digits
            if not isinstance(ex, tomllib.TOMLDecodeError):
                raise ProjectError("a number in the project file is far too long",
                                   code="project.toml_syntax", where=str(file),
                                   hint="check the numbers of the project file") from None
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
        proj = cls(file.parent.resolve(), config, file)
        proj._protect_inputs()
        return proj

    def _protect_inputs(self) -> None:
        """Remember every file the project reads, and its raw folder: no output may replace them
        (:func:`~diaspora_survey._files.guard_output`)."""
        from ._files import note_input, protect_dir

        c = self.config
        note_input(self.file)
        protect_dir(self._root / "raw")
        rels = [w.file for w in c.waves] + [w.codebook for w in c.waves] + list(c.harmonise.crosswalks) \
            + list(c.reference.tables) + [c.weighting.targets, c.compare.claims]
        for rel in rels:
            if rel:
                note_input(self._root / rel)
        for w in c.waves:
            parent = (self._root / w.file).parent
            try:
                if parent.resolve() != self._root:
                    protect_dir(parent)
            except (OSError, RuntimeError):   # a symlink loop: the reader reports it
                pass

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
    def engine(self) -> str:
        """``[data] engine``: pandas (default), duckdb or dask."""
        return self.config.data.engine

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

    def indicators(self) -> list:
        """The project's own indicators (``[[compare.indicators]]``), validated."""
        from .compare.indicators import from_config

        return [from_config(d, f"{self.file} [[compare.indicators]][{i}]")
                for i, d in enumerate(self.config.compare.indicators)]

    def path(self, rel: str | Path) -> Path:
        """Absolute path of ``rel`` (relative to the project directory; absolute paths kept).

        The path (symbolic links followed) must lie inside the project folder unless the
        project file says ``[project] allow_outside = true``: a project file cannot make the
        toolkit read ``/etc/passwd`` or follow a link out of raw/ silently.
        """
        p = Path(rel)
        p = p if p.is_absolute() else self._root / p
        loop = False
        try:
            os.stat(p)
        except FileNotFoundError:
            pass
        except OSError as ex:      # a name too long, a loop, …: one message, not a traceback later
            if ex.errno != errno.ELOOP:
                raise ProjectError(f"unusable path {str(rel)[:80]!r}: {ex.strerror}",
                                   code="project.bad_path", where=str(self.file),
                                   hint="fix the path in the project file") from None
            loop = True
        try:
            real = p.resolve()
        except (OSError, RuntimeError):   # RuntimeError: a symbolic link loop (Python < 3.13)
            loop = True
        if loop:
            from .errors import InputFileError

            raise InputFileError("the path is a symbolic link loop", code="input.not_regular",
                                 where=self._display(p), hint="remove the loop; name the real file")
        if not self.config.project.allow_outside:
            if real != self._root and self._root not in real.parents:
                raise ProjectError(f"the path {str(rel)!r} lies outside the project folder"
                                   + (" (through a symbolic link)" if not Path(rel).is_absolute()
                                      and ".." not in Path(rel).parts else ""),
                                   code="project.outside", where=str(self.file),
                                   hint="keep the project's files inside its folder, or set "
                                        "[project] allow_outside = true in the project file")
        return p

    def wave(self, wave_id: str) -> WaveConfig:
        followups = self.config.panel.followups if self.config.panel is not None else []
        for w in list(self.config.waves) + list(followups):
            if w.id == wave_id:
                return w
        raise ProjectError(f"no wave {wave_id!r} in the project", code="project.unknown_wave",
                           where=str(self.file), hint="waves: " + ", ".join(
                               self.wave_ids + [f.id for f in followups]))

    def _display(self, p: Path) -> str:
        try:
            return str(p.relative_to(self._root))
        except ValueError:
            return str(p)

    # -- steps --------------------------------------------------------------------------------------

    def crosswalks(self):
        from .harmonise import crosswalks

        return crosswalks.load([self.path(c) for c in self.config.harmonise.crosswalks])

    def regions(self):
        """The host-region table: packaged, then ``[harmonise] host_regions`` CSVs."""
        from .harmonise import regions

        return regions.load([self.path(p) for p in self.config.harmonise.host_regions])

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
        regions = self.regions()
        results = {}
        for w in self.config.waves:
            raw = self.read_wave(w.id)
            results[w.id] = harmonise(raw, cbs[w.id], strict=strict, crosswalks=cws,
                                      age_bands=self.config.harmonise.bands(), wave_id=w.id,
                                      regions=regions)
            if len(results[w.id].data) == 0:   # never a normal-looking report of nobody
                raise self._empty_wave(w.id, len(raw.data), len(results[w.id].exclusions))
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

    def harmonise_in_chunks(self, chunk_rows: int | None = None, *, strict: bool | None = None) -> "HarmonisedChunks":
        """Every wave harmonised ``chunk_rows`` rows at a time (default ``[data] chunk_rows``): a
        :class:`HarmonisedChunks` whose :meth:`~HarmonisedChunks.frames` yield the stacked data
        chunk by chunk (as :meth:`harmonise_all` stacks it), then ``.result`` (a
        :class:`ProjectHarmonised` without ``data``). Every wave's file is read once here (the
        first pass of :func:`diaspora_survey.io.chunks.open_chunked`) before any row is given.
        .sav, .zsav and CSV files are read in chunks; other formats are read whole, then
        harmonised in chunks (said in ``result.notes``)."""
        from .errors import InputFileError
        from .harmonise.apply import Stacker
        from .harmonise.chunked import harmonise_chunked
        from .io.chunks import CHUNKED_FORMATS, check_chunk_rows
        from .io.detect import resolve_format

        if chunk_rows is None:
            chunk_rows = self.config.data.chunk_rows
        if chunk_rows is None:
            raise ProjectError("no chunk size", code="project.invalid", where=str(self.file),
                               hint="set [data] chunk_rows = N or pass --chunk-rows N")
        chunk_rows = check_chunk_rows(chunk_rows, where=str(self.file))
        strict = self.config.harmonise.strict if strict is None else strict
        cbs = self.codebooks()
        cws = self.crosswalks()
        regions = self.regions()
        runs, notes = {}, []
        for w in self.config.waves:
            p = self.path(w.file)
            if not p.exists():
                raise InputFileError("raw file not found", code="input.not_found", where=self._display(p),
                                     hint=f"check 'file' of wave {w.id!r} in {FILENAME}")
            opts = {k: getattr(w, k) for k in ("encoding", "sep", "decimal") if getattr(w, k) is not None}
            fmt, _ = resolve_format(p, None)
            kw = dict(chunk_rows=chunk_rows, strict=strict, crosswalks=cws, age_bands=self.config.harmonise.bands(),
                      wave_id=w.id, regions=regions)
            if fmt in CHUNKED_FORMATS:
                runs[w.id] = harmonise_chunked(p, cbs[w.id], **opts, **kw)
            else:
                notes.append(f"wave {w.id}: {fmt} files are not read in chunks; read whole, harmonised in chunks")
                runs[w.id] = harmonise_chunked(self.read_wave(w.id), cbs[w.id], **kw)
            if runs[w.id].wave.n_rows == 0:
                raise self._empty_wave(w.id, 0, 0)
        stacker = Stacker({wid: r.empty() for wid, r in runs.items()}, self.wave_ids)
        return HarmonisedChunks(self, runs, stacker, notes)

    def _empty_wave(self, wave_id: str, n_read: int, n_ex: int):
        from .errors import HarmonisationError

        return HarmonisationError(f"wave {wave_id!r} has no respondents after harmonisation "
                                  f"({n_read:,} row(s) read, {n_ex:,} excluded)",
                                  code="harmonise.empty_wave", where=self._display(self.path(self.wave(wave_id).file)),
                                  hint="check the file and the codebook's eligibility rules, "
                                       "or remove the wave from the project file")

    def harmonised(self, *, strict: bool | None = None):
        """All waves harmonised and stacked (DataFrame with a categorical ``wave`` column)."""
        return self.harmonise_all(strict=strict).data

    def harmonise_wave(self, wave_id: str, *, strict: bool | None = None):
        """One wave (cross-sectional or a panel follow-up) harmonised: a ``Harmonised``."""
        from .harmonise.apply import harmonise

        strict = self.config.harmonise.strict if strict is None else strict
        if self._harmonised is not None and getattr(self._harmonised, "_strict", None) == strict \
                and wave_id in self._harmonised.waves:
            return self._harmonised.waves[wave_id]
        return harmonise(self.read_wave(wave_id), self.codebook(wave_id), strict=strict,
                         crosswalks=self.crosswalks(), age_bands=self.config.harmonise.bands(),
                         wave_id=wave_id, regions=self.regions())

    @property
    def panel_config(self) -> PanelConfig | None:
        return self.config.panel

    def panel(self, *, strict: bool | None = None, weights=None):
        """Link the panel waves of ``[panel]``: a :class:`~diaspora_survey.harmonise.panel.PanelLink`
        (``.data``: one row per respondent per wave; ``.report``: matched / unmatched /
        duplicated keys and conflicting fixed attributes with counts; ``.issues``).

        ``weights``: baseline weights (a Series aligned with the baseline wave's harmonised rows,
        or a frame with ``wave``, ``resp_id`` and ``weight`` such as the weight step's output);
        they are joined to the baseline rows as ``weight``.
        """
        from .harmonise.panel import link

        cfg = self.config.panel
        if cfg is None or len(cfg.waves) < 2:
            raise ProjectError("the project declares no panel", code="panel.not_declared",
                               where=str(self.file),
                               hint="add a [panel] section with waves = [BASELINE, FOLLOW-UP, ...] "
                                    "and key = \"panel_id\" (see docs/panel.md)")
        strict = cfg.strict if strict is None else strict
        frames = {}
        for wid in cfg.waves:
            self.wave(wid)   # a clear error for an unknown id
            frames[wid] = self.harmonise_wave(wid).data
        where = {wid: self._display(self.path(self.wave(wid).codebook)) for wid in cfg.waves}
        return link(frames, key=cfg.key, strict=strict, where=where, weights=weights)

    def panel_weights(self):
        """Baseline weights for the panel: the weight step's weights when the baseline is a
        cross-sectional wave of the project (``[[waves]]``), else None (all 1)."""
        cfg = self.config.panel
        if cfg is None or not cfg.waves or cfg.waves[0] not in self.wave_ids:
            return None
        wc = self.config.weighting
        if wc.margins is None and not self.path(wc.targets).exists():
            return None     # no weighting targets: the panel is analysed unweighted (and says so)
        from .weighting import weight_project

        return weight_project(self, self.harmonised()).data

    def panel_analysis(self, *, strict: bool | None = None, weights=None, followup=None, link=None):
        """Link the panel and run the analysis of ``[panel]`` (retention, attrition weights,
        returns / onward moves by host region and departure cohort, transitions, cumulative
        return): a :class:`~diaspora_survey.survey.longitudinal.PanelAnalysis`. ``weights`` as in
        :meth:`panel`; default: the weight step's weights of the baseline wave."""
        from .survey.longitudinal import analyse

        cfg = self.config.panel
        if link is not None:     # an existing link (e.g. printed first by the CLI)
            lk = link
            weights = "given" if "weight" in lk.data.columns and lk.data["weight"].notna().any() else None
        else:
            if weights is None:
                weights = self.panel_weights()
            lk = self.panel(strict=strict, weights=weights)
        a = analyse(lk, cfg.covariates if cfg else (), followup=followup,
                    weight="weight" if weights is not None else None, method=cfg.attrition,
                    classes=cfg.classes, min_cell=cfg.min_cell, trim_upper=cfg.trim_upper)
        a.baseline_weights = ("the weight step's weights of the baseline wave" if weights is not None else
                              "none (no weighting targets, or the baseline is not a [[waves]] wave): "
                              "the baseline counts unweighted")
        return a
    def require_waves(self) -> None:
        """A ProjectError when the project file lists no waves (the steps need at least one)."""
        if not self.config.waves:
            raise ProjectError("the project lists no waves", code="project.no_waves", where=str(self.file),
                               hint="add a [[waves]] block (id, file, codebook) per survey file")

    def claims_file(self) -> Path | None:
        """The claims file, or None when the default ``codebooks/claims.yaml`` is absent; a
        ``[compare] claims`` set explicitly in the project file must exist (never dropped silently)."""
        rel = self.config.compare.claims
        if not rel:
            return None
        p = self.path(rel)
        if p.exists():
            return p
        if "claims" in self.config.compare.model_fields_set:
            raise ProjectError("claims file not found", code="project.missing_file", where=self._display(p),
                               hint=f"create it, fix [compare] claims in {FILENAME}, or remove the key")
        return None

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
# allow_outside = true       # let paths below (or symlinks in raw/) point outside this folder
# sample = "Emigrant sample"  # the respondents, in the report's titles and legends (default "Sample")
# sample_design = "online non-probability sample"   # for the methods text (default: not stated)

# One [[waves]] block per survey wave. `id` becomes the value of the `wave` column.
# Put the raw file into raw/ and write a codebook draft with
#   diaspora-survey codebook draft raw/FILE -o codebooks/NAME.yaml
#
# [[waves]]
# id = "2022-03"
# file = "raw/2022-03_wave1.sav"
# codebook = "codebooks/2022-03_wave1.yaml"
# encoding = "WINDOWS-1251"  # optional import overrides: encoding, sep, decimal

[data]
engine = "pandas"            # where `weight` and `estimate` compute: pandas (in memory) | duckdb | dask (docs/scale.md)
# chunk_rows = 200000        # harmonise waves larger than memory this many rows at a time (docs/scale.md)

[harmonise]
crosswalks = []              # your CSVs extending the packaged crosswalks (label,code[,crosswalk])
strict = false               # true: unmapped codes are errors instead of reported NA
# age_bands = [[18, 24], [25, 34], [35, 44], [45, 54], [55, 64], [65]]

[weighting]
targets = "codebooks/targets.yaml"
method = "rake"              # rake | poststratify | calibrate | none (design weights as they are)
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
# label = "Russian population"   # its name in titles and legends (default: the reference's title)
tables = []                  # your reference tables (CSV/YAML)
min_age = 18
max_age = 0                  # 0 = no upper limit
# year = 2023                # fieldwork year if there are no interview dates or date-like wave ids
max_year_gap = 3             # tables further from fieldwork: caveat + claims inconclusive
accept = []                  # gaps you explicitly accept: "year_gap", "universe"

[compare]
claims = "codebooks/claims.yaml"
by = ["wave"]
# Your own indicator (any harmonised categorical or boolean variable; docs/indicators.md):
# [[compare.indicators]]
# name = "married"
# variable = "marital_status"
# categories = ["married"]
# standardise = "age_sex"

[report]
output = "reports/diaspora-report.pdf"
min_cell_size = 10
formats = ["pdf"]

# A panel (waves re-interviewing the same respondents; docs/panel.md):
# [panel]
# key = "panel_id"              # the link key, mapped in every panel wave's codebook
# waves = ["2022-03", "2023-03"] # in time order; the first is the baseline
# strict = false                 # true: duplicated / unmatched keys and conflicts are errors
# attrition = "propensity+rake"  # propensity | rake | propensity+rake
# covariates = ["age_group", "sex", "host_region"]
# classes = 0                    # 0: w / p per respondent; k: k propensity classes
# trim_upper = 5.0
# [[panel.followups]]            # panel-only waves (not in the cross-sectional steps)
# id = "2023-03"
# file = "raw/2023-03_panel.sav"
# codebook = "codebooks/2023-03_panel.yaml"
'''


__all__ = ["Project", "ProjectConfig", "PanelConfig", "ProjectHarmonised", "HarmonisedChunks", "WaveConfig",
           "TEMPLATE", "FILENAME"]
