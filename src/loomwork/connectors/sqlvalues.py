"""Turning the values SQL drivers return into JSON values, the same way for every SQL datasource kind.

A query's result is journaled and returned over the API as JSON, so each value is converted once, here:

==========================  =====================================================================================
driver value                JSON value
==========================  =====================================================================================
``None``, bool, int, str    as is
float                       as is; NaN and ±infinity (not JSON) become the strings ``"NaN"``, ``"Infinity"``,
                            ``"-Infinity"``
``Decimal``                 an int when written without a fractional part (``NUMERIC`` without scale,
                            ``SUM`` of integers); otherwise the exact decimal string (``"10.50"``), so a
                            ``NUMERIC(10,2)`` column is always a string and never loses a digit
``datetime`` with a zone    RFC 3339 with its offset: ``"2024-05-01T12:30:00+02:00"``
``datetime`` without zone   ISO 8601 without offset: ``"2024-05-01T12:30:00"``
``date`` / ``time``         ISO 8601: ``"2024-05-01"`` / ``"12:30:00"`` (with offset if it has one)
``timedelta`` (interval)    ISO 8601 duration: ``"P1DT2H30M"``, ``"-PT0.5S"``
bytes (bytea, BLOB)         standard base64 with padding (decode with ``base64.b64decode``)
``UUID``, IP addresses      their string form
list / tuple (arrays)       lists, converted item by item
dict (JSON columns)         objects, converted value by value
set (MySQL ``SET``)         a sorted list
anything else               ``str(value)`` (e.g. PostgreSQL ranges), never an unserialisable object
==========================  =====================================================================================
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..queries import Query, bind_sql

__all__ = ["Scrubber", "bind_format_sql", "duration_iso", "json_params", "row_dicts", "to_json"]


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return str(value)


def duration_iso(value: timedelta) -> str:
    """An ISO 8601 duration: days, then hours, minutes and (fractional) seconds."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    date_part = f"{value.days}D" if value.days else ""
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if seconds or value.microseconds:
        frac = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time_part += f"{seconds}{frac}S"
    if not date_part and not time_part:
        return "PT0S"
    return f"{sign}P{date_part}{'T' + time_part if time_part else ''}"


def _sequence(value: Sequence[Any]) -> list[Any]:
    return [to_json(item) for item in value]


def _mapping(value: dict[Any, Any]) -> dict[str, Any]:
    return {str(key): to_json(item) for key, item in value.items()}


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    float: _float,
    Decimal: _decimal,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    timedelta: duration_iso,
    bytes: lambda v: base64.b64encode(v).decode("ascii"),
    bytearray: lambda v: base64.b64encode(bytes(v)).decode("ascii"),
    memoryview: lambda v: base64.b64encode(v.tobytes()).decode("ascii"),
    list: _sequence,
    tuple: _sequence,
    dict: _mapping,
    set: lambda v: sorted((to_json(item) for item in v), key=str),
    frozenset: lambda v: sorted((to_json(item) for item in v), key=str),
}
_AS_IS = frozenset({str, int, bool, type(None)})


def to_json(value: Any) -> Any:
    """One driver value as a JSON value (see the module docstring for the table)."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is not None:
        return convert(value)
    for base, convert in _CONVERTERS.items():  # subclasses (e.g. a driver's own datetime or str types)
        if isinstance(value, base):
            return convert(value)
    if isinstance(value, str | int):
        return str(value) if isinstance(value, str) else int(value)
    return str(value)


def row_dicts(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows (tuples) as dicts keyed by column name, every value converted; a later duplicate name wins."""
    out: list[dict[str, Any]] = []
    as_is = _AS_IS
    for row in rows:
        out.append(
            {name: (value if type(value) in as_is else to_json(value)) for name, value in zip(names, row, strict=True)}
        )
    return out


def json_params(values: Sequence[Any], dumps: Callable[[Any], str]) -> list[Any]:
    """Bound values for drivers without a JSON parameter type: dicts and lists become JSON text."""
    return [dumps(value) if isinstance(value, dict | list) else value for value in values]


_SENTINEL = "\x00loomwork-param\x00"  # cannot occur in SQL text (servers reject NUL in statements)


def bind_format_sql(query: Query, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL with ``%s`` placeholders (``format`` paramstyle) and the values in order.

    With values, a literal ``%`` in the SQL text is doubled first, as the driver then treats ``%`` as a format
    character; params are bound separately and never touched. Without values the SQL is returned as written
    (the drivers do not interpret ``%`` when no params are passed).
    """
    sql, values = bind_sql(query, params, _SENTINEL)
    if not values:
        return sql, values
    return sql.replace("%", "%%").replace(_SENTINEL, "%s"), values


class Scrubber:
    """Removes secret values (and a URL's password, raw and percent-encoded) from messages."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        words: set[str] = set()
        for value in secrets.values():
            if not value:
                continue
            words.add(value)
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                words.update({password, unquote(password), quote(unquote(password), safe="")})
        self._words = sorted((w for w in words if len(w) >= 3), key=len, reverse=True)

    def __call__(self, message: str) -> str:
        for word in self._words:
            message = message.replace(word, "***")
        return message
