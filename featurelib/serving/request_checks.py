"""What a read request may hold, checked before anything is read: the entity rows as columns,
their count, each join key's ids and each request field's values. Anything Feast would
mis-serve (a numeric id for a string key, silent nulls, ragged columns) is a ``BadRequestError``
naming the field (HTTP 422)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from feast.value_type import ValueType

from featurelib.errors import BadRequestError

# Entity ids: what a join key of each type accepts (anything else is a 422, never silent nulls).
ID_TYPES: dict[ValueType, tuple[type, str]] = {
    ValueType.STRING: (str, "a string"),
    ValueType.INT64: (int, "an integer"),
    ValueType.INT32: (int, "an integer"),
}
# Request fields: what each declared type accepts (null is allowed: the on-demand view sees None).
REQUEST_TYPES: dict[ValueType, tuple[tuple[type, ...], str]] = {
    ValueType.DOUBLE: ((int, float), "a number"),
    ValueType.FLOAT: ((int, float), "a number"),
    ValueType.INT64: ((int,), "an integer"),
    ValueType.INT32: ((int,), "an integer"),
    ValueType.STRING: ((str,), "a string"),
    ValueType.BOOL: ((bool,), "a boolean"),
}


def columnar(entity_rows: Any) -> dict[str, list]:
    if isinstance(entity_rows, Mapping):
        out = {}
        for name, column in entity_rows.items():
            if isinstance(column, (str, bytes)) or not isinstance(column, Sequence) and not hasattr(column, "__len__"):
                raise BadRequestError(f"entities.{name}: expected a list of values, got {type(column).__name__}")
            out[name] = list(column)
        return out
    if isinstance(entity_rows, Sequence) and not isinstance(entity_rows, (str, bytes)):
        if not entity_rows:
            raise BadRequestError("entities: no entity rows")
        keys = list(entity_rows[0].keys()) if isinstance(entity_rows[0], Mapping) else None
        if keys is None:
            raise BadRequestError("entity_rows: expected a list of dicts")
        columns: dict[str, list] = {k: [] for k in keys}
        for i, row in enumerate(entity_rows):
            if not isinstance(row, Mapping) or row.keys() != columns.keys():
                raise BadRequestError(f"entity_rows[{i}]: every row must have the same keys ({', '.join(keys)})")
            for k, v in row.items():
                columns[k].append(v)
        return columns
    raise BadRequestError(f"entities: expected a dict of lists or a list of dicts, got {type(entity_rows).__name__}")


def row_count(columns: dict[str, list]) -> int:
    if not columns:
        raise BadRequestError("entities: no join key given")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}: {len(v)}" for k, v in columns.items())
        raise BadRequestError(f"entities: every field must have the same number of values ({detail})")
    n = lengths.pop()
    if n == 0:
        raise BadRequestError("entities: no entity rows (the lists are empty)")
    return n


def checked_ids(name: str, values: list, kind: ValueType) -> list:
    """The ids of one join key, as plain ``str`` or ``int``; ``BadRequestError`` naming the first
    that is null, of another type, or text that cannot be encoded (a lone surrogate)."""
    expected, what = ID_TYPES.get(kind, (str, "a string"))
    if expected is str and all(type(v) is str and v.isascii() for v in values):
        return values  # the common case, checked at C speed
    for i, v in enumerate(values):
        if type(v) is not expected and not (isinstance(v, expected) and not isinstance(v, bool)):
            got = "null" if v is None else f"{v!r} ({type(v).__name__})"
            raise BadRequestError(f"entities.{name}[{i}]: an id must be {what}, got {got}")
        if expected is str:
            _check_text(name, i, v)
    if expected is str and any(type(v) is not str for v in values):
        return [str(v) for v in values]  # numpy.str_ and other subclasses, as plain strings
    if expected is int and any(type(v) is not int for v in values):
        return [int(v) for v in values]
    return values


def _check_text(name: str, i: int, text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise BadRequestError(f"entities.{name}[{i}]: not valid Unicode text (a lone surrogate?)") from None


def checked_request_values(name: str, values: list, kind: ValueType | None) -> list:
    """A request field's values, unchanged; ``BadRequestError`` naming the first of the wrong type
    for the field's declared type (null is allowed: the on-demand view sees None)."""
    accepted, what = REQUEST_TYPES.get(kind, ((), "")) if kind is not None else ((), "")
    if not accepted or all(type(v) in accepted and type(v) is not str for v in values):
        return values
    for i, v in enumerate(values):
        if v is None:
            continue
        if not isinstance(v, accepted) or (isinstance(v, bool) and bool not in accepted):
            raise BadRequestError(f"entities.{name}[{i}]: a request value must be {what}, got {v!r} "
                                  f"({type(v).__name__})")
        if kind == ValueType.STRING:
            _check_text(name, i, v)
    return values
