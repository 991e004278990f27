"""Table rows as plain values, for the bulk write paths.

Building a SQLModel table object costs 50-80 microseconds here (pydantic plus SQLAlchemy's
instance state), and the capture path builds four or more per diary entry only to turn them
into column values for a multi-row INSERT. ``new_row`` builds those values directly, with the
model's own Python-side defaults (ids, timestamps), as a ``Row``: a dict that also answers
attribute access, so code that reads ``entry.diary_date`` works on either.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar, cast

from pydantic_core import PydanticUndefined

T = TypeVar("T")


class Row(dict[str, Any]):
    """Column values by column key, readable as attributes too; ``model`` is the table's."""

    __slots__ = ("model",)
    model: type[Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@cache
def _defaults(model: type[Any]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """The model's Python-side defaults: constant values by column key, and the columns with
    a default factory (ids, timestamps)."""
    constants: dict[str, Any] = {}
    factories = []
    for column in model.__table__.columns:
        info = model.model_fields.get(column.key)
        if info is None:
            continue
        if info.default_factory is not None:
            factories.append((column.key, info.default_factory))
        else:
            constants[column.key] = None if info.default is PydanticUndefined else info.default
    return constants, tuple(factories)


def new_row(model: type[T], **values: Any) -> T:
    """A row of ``model``'s table: ``values`` plus the model's defaults for the other columns.

    Typed as the model for its readers; it is a ``Row`` and is never added to a session."""
    constants, factories = _defaults(cast(Any, model))
    row = Row(constants)
    row.update(values)
    row.model = model
    for key, factory in factories:
        if key not in values:
            row[key] = factory()
    return cast(T, row)


def fields_of(obj: Any, keys: tuple[str, ...]) -> Any:
    """``obj``'s values by column key, for hot paths that read a row many times: a ``Row`` is
    such a mapping already (read it by key - its attribute access runs only after a failed
    lookup, 0.4 us against 0.025), a table object's ``keys`` are copied into a dict."""
    if isinstance(obj, Row):
        return obj
    return {key: getattr(obj, key) for key in keys}


def model_of(obj: Any) -> type[Any]:
    return obj.model if isinstance(obj, Row) else type(obj)
