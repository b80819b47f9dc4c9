"""What one raw variable holds: its value labels with counts, its missing codes and their
meaning, and the values without labels (``diaspora-survey inspect FILE --variable NAME``).

Counts are of rows of the raw file; a code declared user-missing is counted under its code
(with ``missing`` set to its kind: ``dont_know``, ``refused``, ``not_applicable``, ``no_answer``
or ``missing``), never folded into the valid values — as SPSS's FREQUENCIES shows them.
"""
from __future__ import annotations

import math
from typing import Any


def _key(v) -> Any:
    """A comparable key for a raw value (numbers as float, texts stripped)."""
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return str(v).strip() if isinstance(v, str) else v


def _plain(v) -> Any:
    """A JSON-friendly scalar (integral floats as int)."""
    import numpy as np

    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return int(f) if f.is_integer() else f
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.datetime64):
        import pandas as pd

        v = pd.Timestamp(v)
    if hasattr(v, "isoformat") and hasattr(v, "normalize"):      # a Timestamp: the date if at midnight
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def value_table(wave, name: str, *, max_values: int = 50) -> dict:
    """Value labels, missing codes and unlabelled values of column ``name`` of a RawWave.

    Returns ``{"values": [{value, label, n, missing}], "other_values": int, "summary": {...}}``:
    ``values`` has every labelled code (with its count, 0 when nobody has it), every
    user-missing code and range member present in the data, and — for columns with at most
    ``max_values`` distinct unlabelled values — those values; ``other_values`` counts the
    distinct unlabelled values left out, and ``summary`` gives ``min``, ``max``, ``mean`` and
    ``distinct`` of the valid (non-missing) numeric values.
    """
    import numpy as np
    import pandas as pd

    s = wave.data[name]
    vm = wave.meta.get(name)
    labels = dict(vm.value_labels) if vm is not None and vm.value_labels else {}
    kinds = {_key(k): v for k, v in (vm.missing_kinds if vm is not None else {}).items()}
    user = vm.is_user_missing(s) & s.notna() if vm is not None and (vm.missing_values or vm.missing_ranges) \
        else pd.Series(False, index=s.index)
    vc = s.value_counts(dropna=True)
    counts: dict = {}
    for k, c in vc.items():
        counts[_key(k)] = counts.get(_key(k), 0) + int(c)
    missing_keys = {_key(k) for k in s[user.to_numpy()].unique()} if user.any() else set()
    declared = {_key(x) for x in (vm.missing_values if vm is not None else [])}

    def missing_kind(key):
        if key in missing_keys or key in declared or _in_ranges(key, vm):
            return kinds.get(key, "missing")
        return None

    rows = []
    seen = set()
    for k, lab in labels.items():
        key = _key(k)
        seen.add(key)
        rows.append({"value": _plain(k), "label": lab, "n": counts.get(key, 0), "missing": missing_kind(key)})
    rest = [(k, c) for k, c in counts.items() if k not in seen]
    miss_rest = [(k, c) for k, c in rest if missing_kind(k)]
    valid_rest = [(k, c) for k, c in rest if not missing_kind(k)]
    for k, c in sorted(miss_rest, key=lambda kc: str(kc[0]) if not isinstance(kc[0], float) else f"{kc[0]:020.6f}"):
        rows.append({"value": _plain(k), "label": None, "n": c, "missing": missing_kind(k)})
    other = 0
    if len(valid_rest) <= max_values:
        try:
            valid_rest.sort(key=lambda kc: kc[0])
        except TypeError:
            valid_rest.sort(key=lambda kc: str(kc[0]))
        rows += [{"value": _plain(k), "label": None, "n": c, "missing": None} for k, c in valid_rest]
    else:
        other = len(valid_rest)
    summary: dict = {"distinct": int(s[~user.to_numpy()].nunique(dropna=True))}
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        valid = s[~user.to_numpy()].dropna().astype("float64")
        if len(valid):
            summary.update(min=_plain(valid.min()), max=_plain(valid.max()),
                           mean=float(np.round(valid.mean(), 6)))
    if rows and any(isinstance(r["value"], float) and math.isnan(r["value"]) for r in rows):
        rows = [r for r in rows if not (isinstance(r["value"], float) and math.isnan(r["value"]))]
    return {"values": rows, "other_values": other, "summary": summary}


def _in_ranges(key, vm) -> bool:
    if vm is None or not vm.missing_ranges or not isinstance(key, float):
        return False
    return any(float(lo) <= key <= float(hi) for lo, hi in vm.missing_ranges
               if isinstance(lo, (int, float)) and isinstance(hi, (int, float)))


__all__ = ["value_table"]
