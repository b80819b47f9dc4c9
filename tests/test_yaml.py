"""The limited YAML loader (issue 11, items 9, 11, 12): billion laughs, recursion, depth,
huge numbers and duplicate keys are one YAML error, quickly."""
from __future__ import annotations

import time

import pytest
import yaml

from diaspora_survey._yaml import MAX_DEPTH, YAMLLimitError, check_expanded_size, compose, safe_load

LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def test_billion_laughs_is_refused_quickly():
    t0 = time.perf_counter()
    with pytest.raises(YAMLLimitError, match="expands to more than"):
        safe_load(LAUGHS)
    assert time.perf_counter() - t0 < 2


def test_recursive_alias_is_refused():
    with pytest.raises(YAMLLimitError, match="recursive"):
        safe_load("a: &a [1, *a]\n")
    with pytest.raises(YAMLLimitError, match="recursive"):
        safe_load("a: &a {k: *a}\n")


def test_depth_limit():
    ok = "x: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    assert safe_load(ok) is not None
    with pytest.raises(YAMLLimitError, match="nested"):
        safe_load("x: " + "[" * 5000 + "]" * 5000)


def test_huge_integer_is_a_yaml_error():
    with pytest.raises(yaml.YAMLError, match="characters"):
        safe_load("x: " + "9" * 5000)
    assert safe_load("x: 12345678901234567890") == {"x": 12345678901234567890}


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(YAMLLimitError, match="appears twice") as e:
        safe_load("a: 1\nb: 2\na: 3\n")
    assert e.value.problem_mark.line == 2 and "line 1" in e.value.problem


def test_ordinary_aliases_and_merge_keys_still_work():
    doc = safe_load("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n")
    assert doc["other"] == {"x": 1, "y": 3} and doc["list"] == [{"x": 1, "y": 2}] * 2


def test_shared_nodes_are_counted_once_per_use():
    node = compose("a: &a [1, 2]\nb: [*a, *a, *a]\n")
    # root 1, key a 1, [1, 2] 3, key b 1, [*a, *a, *a] 1 + 3 x 3
    assert check_expanded_size(node) == 16
