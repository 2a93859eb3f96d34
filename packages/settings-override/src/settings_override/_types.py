"""Parsing and serialising setting values.

A codec turns an environment string into a typed value (`parse`), checks a value given in
Python (`check`, which also parses strings exactly as environment values are parsed) and turns a
value back into a string that `parse` maps to the same value (`dump`). `export` is what a child's
environment needs: `dump`, or None where the variable must be left unset (the pydantic adapter's
codecs use that for a None that only an absent variable gives back).

`Codec` is also the private extension point: `SettingsRegistry._add` accepts any subclass, and the
pydantic adapter subclasses it to validate with pydantic. Subclasses override `parse`, `check`,
`dump` and, if needed, `export`; every method raises ValueError (never showing the value) for
input that does not fit.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import types
import typing
from typing import Any

__all__ = ["Codec", "codec_for", "describe_type"]

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})

SUPPORTED = "str, int, float, bool, pathlib.Path, list[str], dict (JSON) or Optional[...] of these"


class Codec:
    """Parse, check and dump values of one supported type."""

    __slots__ = ("complex", "optional", "type_name")

    def __init__(self, type_name: str, *, optional: bool = False, complex: bool = False) -> None:
        self.type_name = type_name
        self.optional = optional
        #: Values are mutable containers exported as JSON.
        self.complex = complex

    def parse(self, raw: str) -> Any:
        """Parse an environment string; raise ValueError saying what is expected."""
        if self.optional and raw == "":
            return None
        return self._parse(raw)

    def check(self, value: object) -> Any:
        """Validate a Python value (strings are parsed like environment values)."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"expected {self.type_name}, got None (the type is not Optional)")
        if isinstance(value, str):
            return self.parse(value)
        return self._check(value)

    def dump(self, value: Any) -> str:
        """Serialise so that `parse(dump(v)) == v`."""
        if value is None:
            return ""
        return self._dump(value)

    def export(self, value: Any) -> str | None:
        """The string a child's environment needs for `value`, or None to leave it unset."""
        return self.dump(value)

    def _parse(self, raw: str) -> Any:
        raise NotImplementedError

    def _check(self, value: object) -> Any:
        raise NotImplementedError

    def _dump(self, value: Any) -> str:
        return str(value)

    def _wrong(self, value: object) -> ValueError:
        return ValueError(f"expected {self.type_name}, got {type(value).__name__}")


class _Str(Codec):
    __slots__ = ()

    def check(self, value: object) -> Any:
        if type(value) is str and (value or not self.optional):
            return value  # the usual override value, without the general path's calls
        return Codec.check(self, value)

    def export(self, value: Any) -> str | None:
        return value if type(value) is str else self.dump(value)

    def _parse(self, raw: str) -> Any:
        return raw

    def _check(self, value: object) -> Any:
        raise self._wrong(value)


class _Int(Codec):
    __slots__ = ()

    def check(self, value: object) -> Any:
        if type(value) is int:
            return value
        return Codec.check(self, value)

    def _parse(self, raw: str) -> Any:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("expected an integer such as 42") from None

    def _check(self, value: object) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise self._wrong(value)


class _Float(Codec):
    __slots__ = ()

    def _parse(self, raw: str) -> Any:
        try:
            return float(raw.strip())
        except ValueError:
            raise ValueError("expected a number such as 1.5") from None

    def _check(self, value: object) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise self._wrong(value)

    def _dump(self, value: Any) -> str:
        return repr(float(value)) if math.isfinite(value) else str(float(value))


class _Bool(Codec):
    __slots__ = ()

    def check(self, value: object) -> Any:
        if type(value) is bool:
            return value
        return Codec.check(self, value)

    def _parse(self, raw: str) -> Any:
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError("expected a boolean: one of 1/true/yes/on or 0/false/no/off")

    def _check(self, value: object) -> Any:
        if isinstance(value, bool):
            return value
        raise self._wrong(value)

    def _dump(self, value: Any) -> str:
        return "true" if value else "false"


class _Path(Codec):
    __slots__ = ()

    def _parse(self, raw: str) -> Any:
        if raw == "":
            raise ValueError("expected a path, got an empty string")
        return pathlib.Path(raw)

    def _check(self, value: object) -> Any:
        if isinstance(value, os.PathLike):
            path = os.fspath(value)
            if isinstance(path, str):
                return self._parse(path)
        raise self._wrong(value)


class _StrList(Codec):
    __slots__ = ()

    def _parse(self, raw: str) -> Any:
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError('expected a JSON list of strings such as ["a", "b"]') from None
        if not isinstance(value, list):
            raise ValueError('expected a JSON list of strings such as ["a", "b"]')
        return self._check(value)

    def _check(self, value: object) -> Any:
        if isinstance(value, (list, tuple)):
            if all(isinstance(item, str) for item in value):
                return list(value)
            raise ValueError("expected a list of strings, found a non-string item")
        raise self._wrong(value)

    def _dump(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)


class _JsonDict(Codec):
    __slots__ = ()

    def _parse(self, raw: str) -> Any:
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError('expected a JSON object such as {"key": 1}') from None
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object such as {"key": 1}')
        return value

    def _check(self, value: object) -> Any:
        if not isinstance(value, dict):
            raise self._wrong(value)
        if not all(isinstance(key, str) for key in value):
            raise ValueError("expected a dict with string keys (JSON objects only have those)")
        try:
            # A round trip both validates (JSON-serialisable, string keys) and takes a private
            # copy, so later changes to the caller's dict cannot leak into the override.
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"expected a JSON-serialisable dict ({exc})") from None

    def _dump(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)


_SIMPLE: dict[Any, tuple[type[Codec], str]] = {
    str: (_Str, "str"),
    int: (_Int, "int"),
    float: (_Float, "float"),
    bool: (_Bool, "bool"),
    pathlib.Path: (_Path, "pathlib.Path"),
    dict: (_JsonDict, "dict"),
}


def _base_codec(tp: Any, optional: bool) -> Codec | None:
    if tp in _SIMPLE:
        cls, name = _SIMPLE[tp]
        name = f"Optional[{name}]" if optional else name
        return cls(name, optional=optional, complex=cls is _JsonDict)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and args in ((str,), ()):
        name = "Optional[list[str]]" if optional else "list[str]"
        return _StrList(name, optional=optional, complex=True)
    if origin is dict and (not args or args[0] is str):
        name = "Optional[dict]" if optional else "dict"
        return _JsonDict(name, optional=optional, complex=True)
    return None


def codec_for(tp: Any) -> Codec:
    """Return the codec for a type annotation, or raise TypeError naming the supported ones."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(members) == 1 and len(typing.get_args(tp)) == 2:
            codec = _base_codec(members[0], optional=True)
            if codec is not None:
                return codec
    else:
        codec = _base_codec(tp, optional=False)
        if codec is not None:
            return codec
    raise TypeError(f"unsupported setting type {tp!r}; use {SUPPORTED}")


def describe_type(tp: Any) -> str:
    """A short name of a supported type for reprs."""
    return codec_for(tp).type_name
