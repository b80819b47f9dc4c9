"""diaspora-survey: survey analysis for emigrant communities.

``import diaspora_survey as ds`` gives the public API (../shared/DESIGN.md, contract):
``ds.read_wave``, ``ds.Codebook``, ``ds.harmonise``, ``ds.Project``, ``ds.SurveyDesign``,
``ds.weighting``, ``ds.reference``, ``ds.compare`` and the ``DataFrame.survey`` accessor;
for panels ``ds.link_panel``, ``ds.attrition_weights`` and ``ds.longitudinal`` (docs/panel.md).
Names are resolved lazily so that the command line starts fast.
"""
from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

_LAZY = {
    "read_wave": ("diaspora_survey.io", "read_wave"),
    "RawWave": ("diaspora_survey.io", "RawWave"),
    "VariableMeta": ("diaspora_survey.io", "VariableMeta"),
    "Codebook": ("diaspora_survey.harmonise.codebook", "Codebook"),
    "harmonise": ("diaspora_survey.harmonise", None),
    "Harmonised": ("diaspora_survey.harmonise.apply", "Harmonised"),
    "Project": ("diaspora_survey.project", "Project"),
    "SurveyDesign": ("diaspora_survey.survey.design", "SurveyDesign"),
    "ScanDesign": ("diaspora_survey.survey.scan", "ScanDesign"),        # out of core: DESIGN.md §Scale
    "scan_design": ("diaspora_survey.survey.scan", "scan_design"),
    "compare": ("diaspora_survey.compare", None),
    "weighting": ("diaspora_survey.weighting", None),
    "reference": ("diaspora_survey.compare.reference", None),
    "schema": ("diaspora_survey.harmonise.schema", None),
    "DiasporaSurveyError": ("diaspora_survey.errors", "DiasporaSurveyError"),
    "link_panel": ("diaspora_survey.harmonise.panel", "link"),            # panels: docs/panel.md
    "longitudinal": ("diaspora_survey.survey.longitudinal", None),
    "attrition_weights": ("diaspora_survey.weighting.attrition", "attrition_weights"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'diaspora_survey' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__


# DataFrame.survey accessor: registered now if pandas is loaded, else as soon as it is,
# without importing pandas here (that would slow down `diaspora-survey --help`).
def _register_accessor() -> None:
    from .survey import accessor  # noqa: F401  (registers on import)


class _PandasImportHook:
    """Meta-path finder that registers the accessor right after pandas finishes importing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "pandas":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec("pandas")
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            _register_accessor()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "pandas" in sys.modules:
    _register_accessor()
else:
    sys.meta_path.insert(0, _PandasImportHook())
