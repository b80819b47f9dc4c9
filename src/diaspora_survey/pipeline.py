"""The project pipeline behind ``diaspora-survey run`` and ``diaspora-survey report``.

:class:`Pipeline` runs the steps on a project — harmonise → weight → compare → report —
each by calling the library module that owns it (``Project.harmonise_all``,
``diaspora_survey.weighting``, ``diaspora_survey.compare.comparison``, :mod:`diaspora_survey.report`).
A step that fails raises its :class:`~diaspora_survey.errors.DiasporaSurveyError` and
stops the pipeline before any report file is written.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._guard import raise_if_stopped
from .errors import ReportError

STEPS = ("harmonise", "weight", "panel", "compare", "report")
PANEL_OUTPUT = "build/panel.parquet"
WEIGHTED_OUTPUT = "build/weighted.parquet"


@dataclass
class StepResult:
    name: str
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)


# ---- atomic writers of the steps' outputs ------------------------------------------------------

def write_parquet(df, path: Path, *more) -> None:
    """Write ``df`` to ``path`` as parquet; further ``(df, path)`` pairs in ``more`` too, all
    published as one unit (:func:`~diaspora_survey._files.publish`: temporary files, a
    journal, then the renames; never over an input of the project or into raw/)."""
    from ._files import publish

    pairs = [(df, Path(path))] + [(d, Path(p)) for d, p in more]
    check_parquet_name(pairs[0][1])
    publish({p: _parquet_writer(d) for d, p in pairs}, code="harmonise.cannot_write")


def check_parquet_name(path: Path, code: str = "harmonise.cannot_write") -> None:
    """A parquet output must be named ``*.parquet`` (never parquet bytes in ``x.csv``)."""
    from .errors import OutputError

    from ._files import guard_output

    guard_output(path, code=code)      # an input or raw/ first: that is the graver mistake
    if Path(path).suffix.lower() != ".parquet":
        raise OutputError(f"this output is written as parquet, but its name ends in "
                          f"{Path(path).suffix or '(no extension)'!r}", code=code, where=str(path),
                          hint="name it *.parquet (e.g. build/harmonised.parquet)")


def _parquet_writer(df):
    return lambda tmp: df.to_parquet(tmp, index=False)


def write_harmonised(project, out: Path, excl_path: Path, *, strict: bool | None = None,
                     chunk_rows: int | None = None):
    """The harmonise step's outputs: the stacked harmonised data to ``out`` and the exclusions
    (``wave`` as text) to ``excl_path``, published as one unit (:func:`write_parquet`). Returns
    the :class:`~diaspora_survey.project.ProjectHarmonised`.

    With ``chunk_rows`` (or ``[data] chunk_rows``) the waves are harmonised that many rows at a
    time (:meth:`~diaspora_survey.project.Project.harmonise_in_chunks`) and each chunk is appended
    to ``out``'s temporary file as one parquet row group (:func:`_stream_parquet`): the data are
    never held whole, and the file reads back (``pandas.read_parquet``, DuckDB) as the in-memory
    step's file. Its ``data`` is then None."""
    from ._files import publish

    check_parquet_name(Path(out))
    chunk_rows = chunk_rows if chunk_rows is not None else project.config.data.chunk_rows
    if chunk_rows is None:
        result = project.harmonise_all(strict=strict)
        write_parquet(result.data, out, (_exclusions_out(result), excl_path))
        return result
    chunks = project.harmonise_in_chunks(chunk_rows, strict=strict)
    publish({Path(out): _stream_parquet(chunks),
             Path(excl_path): lambda tmp: _exclusions_out(chunks.result).to_parquet(tmp, index=False)},
            code="harmonise.cannot_write")
    return chunks.result


def _exclusions_out(result):
    excl = result.exclusions.copy()
    excl["wave"] = excl["wave"].astype("string")
    return excl


def _stream_parquet(chunks):
    """A writer (for :func:`~diaspora_survey._files.publish`) appending every frame of
    ``chunks.frames()`` to the temporary file as one row group (pyarrow ``ParquetWriter``).

    The schema is fixed before the first row (from ``chunks.schema()``: the columns, dtypes and
    categories of every chunk) and enforced on each chunk: the same Arrow types and, for
    categorical columns, identical dictionaries — a chunk that differs is an error, never a file
    that reads back differently. The stacked frame's ``attrs`` (``source_rows``, known once every
    chunk is harmonised) are stored as ``DataFrame.to_parquet`` stores them (``PANDAS_ATTRS``, in
    the file's metadata and in its stored Arrow schema), then checked on the written file."""
    def write(tmp: Path) -> None:
        import base64
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        from .errors import HarmonisationError

        first = pa.Table.from_pandas(chunks.schema(), preserve_index=False)
        schema = first.schema
        dicts = {f.name: first.column(f.name).combine_chunks().dictionary
                 for f in schema if pa.types.is_dictionary(f.type)}

        def differs(what: str):
            return HarmonisationError(f"a chunk of the harmonised data differs from the first one ({what})",
                                      code="harmonise.internal", where=str(tmp),
                                      hint="this is a bug: report it (and harmonise without chunk_rows "
                                           "meanwhile)")

        with pq.ParquetWriter(tmp, schema) as writer:
            for frame in chunks.frames():
                raise_if_stopped()
                t = pa.Table.from_pandas(frame, preserve_index=False)
                if not t.schema.equals(schema, check_metadata=False):
                    raise differs(f"columns or types: {t.schema} vs {schema}")
                for name, d in dicts.items():
                    if any(not c.dictionary.equals(d) for c in t.column(name).chunks):
                        raise differs(f"the categories of {name!r}")
                writer.write_table(t.replace_schema_metadata(schema.metadata), row_group_size=max(len(t), 1))
            attrs = json.dumps(chunks.attrs)
            md = dict(schema.metadata or {})
            pandas_md = json.loads(md[b"pandas"])
            pandas_md["attributes"] = chunks.attrs         # where pyarrow's from_pandas keeps attrs
            md[b"pandas"] = json.dumps(pandas_md).encode("utf8")
            md[b"PANDAS_ATTRS"] = attrs.encode()           # where DataFrame.to_parquet keeps them
            stored = base64.b64encode(schema.with_metadata(md).serialize().to_pybytes()).decode()
            writer.add_key_value_metadata({"pandas": md[b"pandas"].decode("utf8"), "PANDAS_ATTRS": attrs,
                                           "ARROW:schema": stored})
        footer = pq.ParquetFile(tmp).metadata.metadata or {}
        back = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(footer.get(b"ARROW:schema", b""))))
        if (pq.read_schema(tmp).metadata or {}).get(b"PANDAS_ATTRS") != attrs.encode() or \
                not back.equals(schema, check_metadata=False):
            raise differs("the file's stored schema")
    return write


def write_outputs(project, res, output: str | Path | None = None, *,
                  harmonised_from: str = "", targets_from: str | None = None) -> list[Path]:
    """Write the weighted data (atomically, see :func:`write_parquet`); returns the paths
    written. The default output is recorded in the build manifest (``harmonised_from``: the
    harmonised input used)."""
    from ._files import publish

    out = Path(output) if output is not None else Path(project.root) / WEIGHTED_OUTPUT
    check_parquet_name(out, code="output.cannot_write")
    written = publish({out: _parquet_writer(res.data)})
    if _is_default(project, out, WEIGHTED_OUTPUT):
        record_step(project, "weight", [out], harmonised_from=harmonised_from,
                    targets_from=targets_from)
    return written


def weight_in_engine(project, source, output: str | Path | None = None, *, engine: str, targets=None,
                     harmonised_from: str = "", targets_from: str | None = None, client=None):
    """The weight step in ``engine`` (duckdb, dask): the harmonised parquet ``source`` raked /
    post-stratified per wave with the project's ``[weighting]`` options
    (:func:`~diaspora_survey.weighting.scale.weight_waves_source`), written to ``output``
    (default build/weighted.parquet, then recorded in the manifest) without loading the rows.
    Returns the :class:`~diaspora_survey.weighting.waves.WavesResult` (``data`` None, ``path``)."""
    from .weighting.scale import weight_waves_source
    from .weighting.waves import project_options

    out = Path(output) if output is not None else Path(project.root) / WEIGHTED_OUTPUT
    check_parquet_name(out, code="output.cannot_write")
    tf, kwargs, note = project_options(project, targets=targets)
    res = weight_waves_source(source, tf, out=out, engine=engine, client=client, **kwargs)
    if note:
        res.decisions.insert(0, note)
    if tf is not None and tf.illustrative:
        res.decisions.insert(0, f"targets are ILLUSTRATIVE ({tf.path}): not census figures")
    res.decisions.insert(0, f"weighted in the {engine} engine (docs/scale.md)")
    if _is_default(project, out, WEIGHTED_OUTPUT):
        record_step(project, "weight", [out], harmonised_from=harmonised_from, targets_from=targets_from)
    return res


# ---- the build manifest: which inputs made build/ ---------------------------------------
#
# build/manifest.json records, for each step that wrote the project's default outputs, the
# SHA-256 of every input (project file, raw files, codebooks, crosswalks, targets) and of
# every output. A step is stale when an input's content changed, an output is missing or
# was replaced, or the package version differs; `compare` and `report` then run the earlier
# steps again (`--no-rebuild`: use build/ as it is).

MANIFEST = "build/manifest.json"


def _is_default(project, out: Path, rel: str) -> bool:
    try:
        return Path(out).resolve() == project.path(rel).resolve()
    except OSError:
        return False


def _rel(project, p: Path) -> str:
    return project._display(Path(p))


def step_inputs(project, step: str) -> dict[str, str]:
    """``{relative path: sha256 | "missing"}`` of the files ``step`` depends on."""
    from . import __version__
    from ._util import sha256_file

    files = [project.file]
    for w in project.waves:
        files += [project.path(w.file), project.path(w.codebook)]
    files += [project.path(c) for c in project.harmonise_config.crosswalks]
    if step == "weight":
        t = project.weighting.targets
        if t and not project.weighting.margins:
            files.append(project.path(t))
    out = {"diaspora-survey": __version__}
    for f in files:
        out[_rel(project, f)] = sha256_file(f) if Path(f).is_file() else "missing"
    return out


def read_manifest(project) -> dict:
    import json

    p = project.path(MANIFEST)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and isinstance(doc.get("steps"), dict) else {}


def record_step(project, step: str, outputs, **extra) -> None:
    """Record ``step``'s inputs and outputs in build/manifest.json (atomically)."""
    import json

    from ._util import atomic_write_text, sha256_file

    doc = read_manifest(project) or {"version": 1, "steps": {}}
    entry = {"inputs": step_inputs(project, step),
             "outputs": {_rel(project, o): sha256_file(o) for o in outputs}}
    entry.update({k: v for k, v in extra.items() if v is not None})
    doc["steps"][step] = entry
    atomic_write_text(project.path(MANIFEST), json.dumps(doc, indent=1, sort_keys=True) + "\n")


def stale_reason(project, step: str) -> str | None:
    """Why ``step``'s outputs in build/ do not follow from the current inputs (None: fresh)."""
    from ._util import sha256_file

    default = {"harmonise": project.harmonise_config.output, "weight": WEIGHTED_OUTPUT}[step]
    if not project.path(default).exists():
        return f"{default} is missing"
    entry = read_manifest(project).get("steps", {}).get(step)
    if entry is None:
        return f"{MANIFEST} has no record of the {step} step"
    now = step_inputs(project, step)
    before = entry.get("inputs", {})
    for k, v in now.items():
        if before.get(k) != v:
            if k == "diaspora-survey":
                return f"made by diaspora-survey {before.get(k)}, this is {v}"
            return f"{k} {'is new' if k not in before else 'changed'} since the {step} step"
    for k in before:
        if k not in now:
            return f"{k} is no longer an input"
    for rel, h in entry.get("outputs", {}).items():
        p = project.path(rel)
        if not p.exists() or sha256_file(p) != h:
            return f"{rel} was changed or removed after the {step} step"
    if step == "weight":
        used = entry.get("harmonised_from", "")
        if used and project.path(used).resolve() != project.path(default_harmonised(project)).resolve():
            return f"weighted from {used}, not the project's harmonised data"
        if entry.get("targets_from"):
            return f"weighted with --targets {entry['targets_from']}, not the project's targets"
    return None


def default_harmonised(project) -> str:
    return project.harmonise_config.output


def ensure_weighted(root, *, rebuild: bool = True, command: str = ""):
    """The project's weighted data, with ``build/`` brought up to date first.

    Returns ``(data, notes)``. With ``rebuild`` (the default) a missing or stale
    harmonised or weighted file (see :func:`stale_reason`) is made again by the harmonise
    and weight steps, written to build/ and recorded; ``notes`` say what was run and why.
    Without ``rebuild`` build/weighted.parquet is read as it is: an error if it is missing,
    a note if it is stale.
    """
    from .errors import InputFileError
    from .project import Project

    project = root if hasattr(root, "harmonise_all") else Project.load(root)
    path = project.path(WEIGHTED_OUTPUT)
    notes: list[str] = []
    if not rebuild:
        if not path.exists():
            raise InputFileError("no weighted data", code="compare.no_data", where=str(path),
                                 hint="run `diaspora-survey weight` first (it writes "
                                      "build/weighted.parquet), or leave out --no-rebuild")
        why = stale_reason(project, "weight")
        if why:
            notes.append(f"build/ may be out of date ({why}); used as it is (--no-rebuild)")
    elif path.exists() and "weight" not in read_manifest(project).get("steps", {}):
        # made by hand or by an older version: nothing tells whether it is up to date
        notes.append(f"{WEIGHTED_OUTPUT} has no record in {MANIFEST} (made by hand or by an "
                     "older version): used as it is; delete it to have it made again")
    else:
        why_h = stale_reason(project, "harmonise")
        why_w = stale_reason(project, "weight")
        if (why_h or why_w) and not project.waves:
            from .errors import ProjectError

            raise ProjectError(f"no weighted data ({why_w or why_h}) and the project has no "
                               "waves to make it from", code="project.no_waves",
                               where=str(project.file),
                               hint="add a [[waves]] block (id, file, codebook), or pass the "
                                    "weighted data with --data FILE")
        if why_h or why_w:
            pipe = Pipeline(project.root, command=command)
            if why_h:
                pipe.run_step("harmonise", pipe.harmonise)
                notes.append(f"ran harmonise: {why_h}")
            else:
                pipe.data = _read_parquet(project.path(project.harmonise_config.output))
                pipe._from_build = True
            pipe.run_step("weight", pipe.weight)
            notes.append(f"ran weight: {why_w or 'the harmonised data were made again'}")
            return pipe.data, notes
    return _read_parquet(path), notes


def _read_parquet(path: Path):
    import pandas as pd

    from .errors import InputFileError

    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds
        raise InputFileError(f"cannot read parquet: {e}", code="input.unreadable", where=str(path),
                             hint="delete it and run the command again (it is made anew)") from None


class Pipeline:
    """Runs a project's steps; results accumulate on the instance."""

    def __init__(self, root: str | os.PathLike = ".", *, command: str = ""):
        from .project import Project

        self.project = Project.load(root)
        self.command = command
        self.harmonised = None        # ProjectHarmonised
        self.data = None              # respondent frame (harmonised, then weighted)
        self.weighted = None          # WavesResult of the weight step
        self.weighting: dict = {}
        self.weighting_info: dict = {}
        self.comparison: dict = {}
        self.panel_analysis = None    # survey.longitudinal.PanelAnalysis when [panel] is declared
        self._panel_done = False
        self.results: list[StepResult] = []
        self._from_build = False      # data read from the project's harmonised parquet
        self._harmonised_file = None  # written in chunks ([data] chunk_rows): the rows are not held

    # ---- steps ------------------------------------------------------------------------
    def run_step(self, name: str, fn: Callable[[], Any]) -> StepResult:
        raise_if_stopped()                   # a stop swallowed in the last step: no next step
        t0 = time.perf_counter()
        outputs = fn() or []
        res = StepResult(name, time.perf_counter() - t0, list(outputs))
        self.results.append(res)
        return res

    def _need_data(self, step: str) -> None:
        if self.data is None and not (step == "weight" and self.project.engine != "pandas"
                                      and self._harmonised_file is not None):
            raise ReportError(f"the {step} step needs the harmonised data", code="report.order",
                              hint="run the harmonise step first")

    def harmonise(self, *, write: bool = True) -> list[Path]:
        self.project.require_waves()
        if not write:
            self.harmonised = self.project.harmonise_all()
            self.data = self.harmonised.data
            return []
        # the same files as `diaspora-survey harmonise` ([data] chunk_rows: chunk by chunk)
        out = self.project.path(self.project.harmonise_config.output)
        excl_path = out.with_name("exclusions.parquet")
        self.harmonised = write_harmonised(self.project, out, excl_path)
        self.data = self.harmonised.data
        if self.data is None:       # written in chunks, never held whole
            self._harmonised_file = out
            # the in-memory weight step needs the rows; an engine reads the file itself
            self.data = _read_parquet(out) if self.project.engine == "pandas" else None
        record_step(self.project, "harmonise", [out, excl_path])
        return [out, excl_path]

    def weight(self, *, write: bool = True) -> list[Path]:
        from .weighting import weight_project

        self._need_data("weight")
        if self.project.engine != "pandas":
            return self._weight_in_engine(write)
        res = weight_project(self.project, self.data)
        self.weighted = res
        self.data = res.data
        self.weighting = dict(res.diagnostics)
        self.weighting_info = {"method": res.method, "targets": list(res.targets)}
        if not write:
            return []
        harmonised = self.project.harmonise_config.output if any(
            r.name == "harmonise" and r.outputs for r in self.results) or self._from_build else ""
        return list(write_outputs(self.project, res, harmonised_from=harmonised))

    def _weight_in_engine(self, write: bool) -> list[Path]:
        """``[data] engine`` duckdb / dask: the weight step in the engine on the harmonised
        parquet; the weighted file is then read for the in-memory steps (compare, report)."""
        from ._files import tmp_name

        harmonised = self.project.path(self.project.harmonise_config.output)
        fresh = any(r.name == "harmonise" and r.outputs for r in self.results) or self._from_build
        temps = []
        src = harmonised
        if not (fresh and harmonised.exists()):
            src = tmp_name(harmonised)
            src.parent.mkdir(parents=True, exist_ok=True)
            self.data.to_parquet(src, index=False)
            temps.append(src)
        out = self.project.path(WEIGHTED_OUTPUT)
        if not write:
            out = tmp_name(out)
            temps.append(out)
        try:
            res = weight_in_engine(self.project, src, out, engine=self.project.engine,
                                   harmonised_from=self.project.harmonise_config.output if fresh else "")
            self.data = _read_parquet(out)
        finally:
            for t in temps:
                t.unlink(missing_ok=True)
        res.data = self.data
        self.weighted = res
        self.weighting = dict(res.diagnostics)
        self.weighting_info = {"method": res.method, "targets": list(res.targets)}
        return [out] if write else []

    def panel(self, *, write: bool = True) -> list[Path]:
        """Link the panel of ``[panel]`` (if any) with the weight step's baseline weights and run
        the panel analysis; writes build/panel.parquet (one row per baseline respondent)."""
        self._panel_done = True
        if self.project.panel_config is None:
            return []
        self._need_data("panel")
        weights = self.data if self.weighted is not None else None
        self.panel_analysis = self.project.panel_analysis(weights=weights)
        if not write:
            return []
        frame = self.panel_analysis.pairs.copy()
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].astype("string")
        out = self.project.path(PANEL_OUTPUT)
        write_parquet(frame, out)
        return [out]

    def compare(self) -> list[Path]:
        self._need_data("compare")
        from .report.collect import compare_project

        self.project.claims_file()      # a claims file named in the project file must exist
        if not self._panel_done:
            self.panel(write=False)
        self.comparison = compare_project(self.project, self.data, panel=self.panel_analysis)
        return []

    def report_inputs(self):
        from .report.collect import report_inputs

        return report_inputs(self)

    def formats(self, formats: list[str] | None = None) -> list[str]:
        """The formats asked for (or the project's [report] formats), validated."""
        from .report import FORMATS

        fmts = list(formats or self.project.report.formats or ["pdf"])
        bad = [f for f in fmts if f not in FORMATS]
        if bad:
            raise ReportError(f"unknown report format {bad[0]!r}", code="report.format",
                              where=None if formats else str(self.project.file),
                              hint=f"use one of: {', '.join(FORMATS)}")
        return fmts

    def report(self, formats: list[str] | None = None, output: str | None = None) -> list[Path]:
        """Build and write the report. Any failure is one :class:`ReportError` naming the
        step and the cause (nothing is written unless every format rendered, so the
        previous report stays as it was)."""
        self._need_data("report")
        from .errors import DiasporaSurveyError
        from .report import write_reports
        from .report.content import build_report

        fmts = self.formats(formats)
        targets = self.report_targets(fmts, output)
        try:
            report = build_report(self.report_inputs())
            return write_reports(report, targets)
        except DiasporaSurveyError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug or resource limit: one message, no file
            raise ReportError(f"the report step failed: {type(e).__name__}: {e}",
                              code="report.failed", where=str(next(iter(targets.values()))),
                              hint="the previous report (if any) is unchanged; run with "
                                   "DIASPORA_SURVEY_NO_FORK=1 python -X faulthandler -m "
                                   "diaspora_survey.cli ... for the traceback, and report it") from e

    def report_targets(self, formats: list[str], output: str | None = None) -> dict[str, Path]:
        """``{format: main output file}``, each checked by
        :func:`~diaspora_survey._files.guard_output` (so a refused output fails before any work)."""
        from ._files import guard_output

        base = Path(output) if output else self.project.path(self.project.report.output)
        if not output and (base.is_dir() or not base.suffix):
            raise ReportError(f"[report] output {self.project.report.output!r} names a folder, not a file",
                              code="report.output", where=str(self.project.file),
                              hint="give a file name, e.g. output = \"reports/diaspora-report.pdf\" "
                                   "(each format gets its extension)")
        targets = {fmt: (base if (len(formats) == 1 and output) else base.with_suffix(f".{fmt}"))
                   for fmt in formats}
        for t in targets.values():
            guard_output(t)
        return targets
