"""Building a sink's frozen settings dataclass from its config section, with clear errors."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Mapping, TypeVar

from genrecast.plugins import SinkConfigError

T = TypeVar("T")


def settings_from_dict(cls: type[T], values: Mapping[str, Any], section: str) -> T:
    """``cls(**values)`` after checking every key exists and every value has the field's
    type (``bool`` strictly; an ``int`` is accepted for a ``float``). Errors name
    ``[section] key``; range checks belong in the dataclass's ``__post_init__``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    problems = []
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            problems.append(f"[{section}] unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        expected = hints[key]
        ok = (isinstance(value, bool) if expected is bool else
              isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else
              isinstance(value, int) and not isinstance(value, bool) if expected is int else
              isinstance(value, expected))
        if not ok:
            problems.append(f"[{section}] {key} must be {expected.__name__}, not {type(value).__name__} {value!r}")
    if problems:
        raise SinkConfigError("; ".join(problems))
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SinkConfigError(f"[{section}] {exc}") from None
