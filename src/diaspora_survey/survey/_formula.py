"""Model formulas without code execution (private; used by ``glm``).

patsy evaluates every factor of a formula (``np.log(x)``, ``C(g)``) as Python code, so a
formula such as ``y ~ __import__('os').system('...')`` would run anything. Here the
formula is first *parsed* with patsy's formula parser (which does not evaluate), then
every factor and the response are checked against a whitelist with Python's ``ast``:

* names of columns of the data (or ``Q("column name")``);
* numbers and strings, arithmetic ``+ - * / // % **``, comparisons, ``& | ~``;
* the functions ``C`` (with ``Treatment``/``Sum``/``Helmert``/``Diff``/``Poly``), ``I``,
  ``offset``, ``log``/``exp``/``sqrt``/``log1p``/``log2``/``log10``/``abs`` and the same
  from ``np.``/``numpy.``, ``center``, ``standardize``, ``scale``.

Anything else - attribute access other than ``np.<function>``, subscripts, lambdas,
comprehensions, other calls, dunder names - is refused with an
:class:`~diaspora_survey.errors.EstimationError` before patsy sees the formula; patsy
then evaluates only whitelisted code in an environment holding only those functions.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..errors import EstimationError

MATH_FUNCS = ("log", "exp", "sqrt", "log1p", "log2", "log10", "abs")
CONTRASTS = ("Treatment", "Sum", "Helmert", "Diff", "Poly")
FUNCS = ("C", "I", "Q", "offset", "center", "standardize", "scale") + MATH_FUNCS + CONTRASTS
KEYWORDS = ("reference", "levels", "contrast", "ddof", "rescale", "scores", "omit")
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd,
           ast.BitOr, ast.BitXor)
_UNARY = (ast.UAdd, ast.USub, ast.Not, ast.Invert)
_CMP = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _bad(formula: str, what: str):
    return EstimationError(f"{what} is not allowed in a model formula",
                           code="estimate.bad_formula", where=f"formula {formula!r}",
                           hint="use column names, numbers, arithmetic and C(), I(), offset(), "
                                "log()/np.log(), exp(), sqrt(); e.g. 'y ~ age + C(education) + "
                                "offset(np.log(n))'")


def check_code(code: str, columns, formula: str) -> set[str]:
    """Validate one factor (or response) expression; returns the column names it uses."""
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError:
        raise EstimationError(f"formula {formula!r}: cannot read {code!r}", code="estimate.bad_formula",
                              where=f"formula {formula!r}", hint="check brackets and operators") from None
    cols = set(map(str, columns))
    used: set[str] = set()

    def func_name(f) -> str | None:
        if isinstance(f, ast.Name) and f.id in FUNCS:
            return f.id
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id in ("np", "numpy") and f.attr in MATH_FUNCS):
            return f.attr
        return None

    def visit(node):
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            visit(node.left)
            return visit(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            return visit(node.operand)
        if isinstance(node, ast.Compare) and all(isinstance(o, _CMP) for o in node.ops):
            visit(node.left)
            for c in node.comparators:
                visit(c)
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            for e in node.elts:
                visit(e)
            return None
        if isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id not in cols:
                raise _bad(formula, f"the name {node.id!r} (not a column of the data)")
            used.add(node.id)
            return None
        if isinstance(node, ast.Call):
            name = func_name(node.func)
            if name is None:
                raise _bad(formula, f"calling {ast.unparse(node.func)!r}")
            if name == "Q":
                if (len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.Constant)
                        or node.args[0].value not in cols):
                    raise _bad(formula, "Q() with anything but the name of a column")
                used.add(node.args[0].value)
                return None
            for a in node.args:
                if isinstance(a, ast.Starred):
                    raise _bad(formula, "*arguments")
                visit(a)
            for k in node.keywords:
                if k.arg is None or k.arg not in KEYWORDS:
                    raise _bad(formula, f"the keyword argument {k.arg!r}")
                visit(k.value)
            return None
        raise _bad(formula, f"{type(node).__name__} ({ast.unparse(node)!r})")

    visit(tree)
    return used


def environment():
    """The only names patsy may evaluate formulas in (besides the data's columns)."""
    import patsy
    import patsy.builtins as pb

    npns = SimpleNamespace(**{f: getattr(np, f) for f in MATH_FUNCS})
    ns = {"np": npns, "numpy": npns, "C": pb.C, "I": pb.I, "Q": pb.Q,
          "offset": (lambda x: x), "center": pb.center, "standardize": pb.standardize,
          "scale": pb.scale}
    ns.update({f: getattr(np, f) for f in MATH_FUNCS})
    ns.update({c: getattr(pb, c) for c in CONTRASTS})
    return patsy.EvalEnvironment([ns])


@dataclass
class ModelSpec:
    lhs: str                 # response code
    rhs: object              # patsy ModelDesc of the right-hand side (no offsets)
    offsets: list            # codes of the offset(...) factors
    columns: set             # column names used anywhere


def parse_model(formula: str, columns) -> ModelSpec:
    """Parse and validate ``formula`` (patsy syntax) against the data's ``columns``."""
    import patsy

    if not isinstance(formula, str) or formula.count("~") != 1:
        raise EstimationError(f"formula {formula!r} needs exactly one '~'", code="estimate.bad_formula",
                              where=f"formula {formula!r}",
                              hint="write 'response ~ predictor1 + C(factor)'")
    lhs, rhs = formula.split("~", 1)
    if not lhs.strip():
        raise EstimationError(f"formula {formula!r} has no response", code="estimate.bad_formula",
                              where=f"formula {formula!r}", hint="write 'response ~ predictors'")
    used = check_code(lhs, columns, formula)
    try:
        desc = patsy.ModelDesc.from_formula(rhs)
    except patsy.PatsyError as e:
        raise EstimationError(f"cannot read formula {formula!r}: {e.message}", code="estimate.bad_formula",
                              where=f"formula {formula!r}", hint="check the operators (+, :, *, -1)") from None
    terms, offsets = [], []
    for term in desc.rhs_termlist:
        codes = [f.code for f in term.factors]
        for c in codes:
            used |= check_code(c, columns, formula)
        offs = [c for c in codes if c.replace(" ", "").startswith("offset(")]
        if offs:
            if len(codes) > 1:
                raise _bad(formula, "an offset() inside an interaction")
            offsets.append(offs[0])
            continue
        terms.append(term)
    return ModelSpec(lhs=lhs.strip(), rhs=patsy.ModelDesc([], terms), offsets=offsets, columns=used)


def model_data(df, columns, rows_ok=None) -> dict:
    """The used columns in forms patsy handles: nullable booleans and strings as
    categoricals (missing = NaN, unused levels dropped), nullable integers/floats as
    float64 with NaN, categoricals without their unused levels. rows_ok: rows that can
    enter the model (levels absent from them are dropped)."""
    import pandas as pd

    out = {}
    for c in columns:
        s = df[c].reset_index(drop=True)
        if isinstance(s.dtype, pd.CategoricalDtype):
            cat = s
        elif pd.api.types.is_bool_dtype(s.dtype):
            cat = pd.Series(pd.Categorical(s.astype(object).where(s.notna(), None),
                                           categories=[False, True]))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out[c] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        elif pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
            cat = pd.Series(pd.Categorical(s.astype(object).where(s.notna(), None)))
        else:
            out[c] = s.to_numpy()
            continue
        present = cat[rows_ok] if rows_ok is not None else cat
        used = set(present.dropna().unique())
        cat = cat.cat.remove_categories([k for k in cat.cat.categories if k not in used])
        out[c] = pd.Categorical(cat)
    return out


def check_condition(expr: str, columns) -> None:
    """Validate a subset condition before ``DataFrame.eval`` sees it: column names
    (backticks for other names), numbers, strings, comparisons (incl. ``in`` / ``not in``
    lists), ``and``/``or``/``not``, ``& | ~`` and arithmetic - no calls, attributes,
    subscripts or ``@`` variables (pandas would evaluate those)."""
    import re

    cols = set(map(str, columns))
    where = f"subset condition {expr!r}"

    def bad(what):
        return EstimationError(f"{what} is not allowed in a subset condition", code="estimate.bad_subset",
                               where=where, hint="use column names, values and comparisons, e.g. "
                                                 "\"wave == 'w2' and age >= 30\" (or pass a boolean mask)")

    quoted = {}

    def repl(m):
        if m.group(1) not in cols:
            raise bad(f"the name {m.group(1)!r} (not a column)")
        key = f"_c{len(quoted)}_"
        quoted[key] = m.group(1)
        return key

    code = re.sub(r"`([^`]*)`", repl, expr)
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError:
        raise bad("this syntax (@variables, statements)") from None
    allowed_cmp = _CMP + (ast.In, ast.NotIn, ast.Is, ast.IsNot)

    def visit(node):
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                visit(v)
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            visit(node.left)
            return visit(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            return visit(node.operand)
        if isinstance(node, ast.Compare) and all(isinstance(o, allowed_cmp) for o in node.ops):
            visit(node.left)
            for c in node.comparators:
                visit(c)
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for e in node.elts:
                visit(e)
            return None
        if isinstance(node, ast.Name):
            if node.id in quoted or (node.id in cols and not node.id.startswith("__")):
                return None
            raise bad(f"the name {node.id!r} (not a column)")
        raise bad(f"{type(node).__name__} ({ast.unparse(node)!r})")

    visit(tree)
