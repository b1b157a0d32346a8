"""Hypothesis strategies of the property tests: any JSON, and vendor examples with parts of them replaced by any JSON,
so that random answers reach deep into each parser as well as past its first check."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Scalars a JSON answer may hold, the awkward ones included (huge and negative numbers, blank text).
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=24),
)


@st.composite
def _json(draw: st.DrawFn, depth: int = 3) -> Any:
    """A JSON value at most ``depth`` levels deep, of at most 3 items a level (a composite: a third of the cost of
    ``st.recursive`` per example, which keeps 10,000 examples a property within seconds)."""
    kind = draw(st.integers(min_value=0, max_value=3)) if depth else 0
    if kind <= 1:
        return draw(json_scalars)
    items = range(draw(st.integers(min_value=0, max_value=3)))
    if kind == 2:
        return [draw(_json(depth - 1)) for _ in items]
    return {draw(st.text(max_size=12)): draw(_json(depth - 1)) for _ in items}


#: Any JSON value, a few levels deep.
json_values = _json()


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every part of a JSON value (keys and indexes from the top), the value itself first."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the part at ``path`` replaced by ``new`` (`_DROP`: removed), the rest shared, not copied."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        child = _replaced(value[head], rest, new)
        return {k: v for k, v in value.items() if k != head} if child is _DROP else {**value, head: child}
    child = _replaced(value[head], rest, new)
    return [*value[:head], *([] if child is _DROP else [child]), *value[head + 1 :]]


_DROP = object()


@st.composite
def mutated(draw: st.DrawFn, value: Any, extra: st.SearchStrategy[Any] = json_values) -> Any:
    """``value`` (a vendor's JSON example) with one to three of its parts replaced by ``extra`` or by a scalar of any
    type, or removed: a few draws per example, however large the example."""
    paths = _paths(value)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(st.just(_DROP), json_scalars, extra)) if path else draw(extra)
        try:
            value = _replaced(value, path, new)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the part
            continue
    return value


def answers(*examples: Any, extra: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    """Any JSON, or one of ``examples`` mutated."""
    return st.one_of(extra, *(mutated(example, extra) for example in examples))
