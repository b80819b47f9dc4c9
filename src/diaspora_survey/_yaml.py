"""YAML for untrusted files: PyYAML's safe loader with limits.

Every YAML file the toolkit reads (codebooks, targets, claims, reference tables) goes through
:class:`LimitedLoader`: tags stay safe (``SafeLoader``), and on top

* nesting deeper than :data:`MAX_DEPTH` levels is refused (a crafted ``[[[[…`` would exhaust
  the stack);
* aliases are limited: at most :data:`MAX_ALIASES` uses, no alias inside its own anchor
  (a recursive document), and the document *with aliases expanded* may hold at most
  :data:`MAX_NODES` nodes ("billion laughs": ten aliases of ten aliases … expand to 10⁹);
* a key given twice in one mapping is refused (PyYAML would keep the last one silently);
* a number of more than :data:`MAX_NUMBER_CHARS` characters is refused (Python refuses to
  convert integers of more than 4300 digits, with a ValueError instead of a YAML error).

Violations raise :class:`YAMLLimitError`, a :class:`yaml.MarkedYAMLError` with ``problem`` and
``problem_mark``, so callers report them like any other YAML error (file:line, one message).
"""
from __future__ import annotations

import yaml

MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 200_000
MAX_NUMBER_CHARS = 100

_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


class YAMLLimitError(yaml.MarkedYAMLError):
    """A YAML document beyond the loader's limits (depth, aliases, size) or with duplicate keys."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem=problem, problem_mark=mark)


class LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with depth, alias, expanded-size, duplicate-key and number limits."""

    #: False for loaders that report duplicate keys themselves (the codebook's, with lines)
    reject_duplicate_keys = True

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(f"more than {MAX_ALIASES} aliases (*name)", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS \
                and len(node.value) > MAX_NUMBER_CHARS:
            raise YAMLLimitError(f"a number of {len(node.value):,} characters (at most "
                                 f"{MAX_NUMBER_CHARS})", node.start_mark)
        if isinstance(node, yaml.MappingNode) and self.reject_duplicate_keys:
            seen: dict = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    ident = (k.tag, k.value)
                    if ident in seen:
                        raise YAMLLimitError(f"the key {k.value!r} appears twice in this mapping "
                                             f"(first at line {seen[ident] + 1})", k.start_mark)
                    seen[ident] = k.start_mark.line
        return node

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None and self._aliases:
            check_expanded_size(node)
        return node


def check_expanded_size(root, limit: int = MAX_NODES) -> int:
    """Number of nodes of ``root`` with every alias expanded; :class:`YAMLLimitError` if it
    exceeds ``limit`` or if an alias refers to a node that contains it (recursion)."""
    memo: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, children visited?)
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(memo[id(c)] for c in children)
            if total > limit:
                raise YAMLLimitError(f"the document expands to more than {limit:,} values through "
                                     "its aliases", node.start_mark)
            memo[key] = total
            continue
        if key in memo:
            continue
        if key in on_path:
            raise YAMLLimitError("an alias refers to a value that contains it (a recursive document)",
                                 node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for c in _children(node):
            if id(c) in on_path:
                raise YAMLLimitError("an alias refers to a value that contains it (a recursive "
                                     "document)", c.start_mark)
            if id(c) not in memo:
                stack.append((c, False))
    return memo[id(root)]


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    return []


def safe_load(text: str, loader: type[LimitedLoader] = LimitedLoader):
    """``yaml.safe_load`` within the limits; any problem is a :class:`yaml.YAMLError`."""
    ld = loader(text)
    try:
        return ld.get_single_data()
    except (ValueError, OverflowError, RecursionError) as ex:   # e.g. a timestamp out of range
        raise YAMLLimitError(f"a value cannot be read ({type(ex).__name__}: {str(ex)[:80]})") from None
    finally:
        ld.dispose()


def compose(text: str, loader: type[LimitedLoader] = LimitedLoader):
    """``yaml.compose`` within the limits (the node graph, for loaders that track lines)."""
    ld = loader(text)
    try:
        return ld.get_single_node()
    except RecursionError:
        raise YAMLLimitError("nested too deeply") from None
    finally:
        ld.dispose()


__all__ = ["LimitedLoader", "YAMLLimitError", "check_expanded_size", "compose", "safe_load",
           "MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "MAX_NUMBER_CHARS"]
