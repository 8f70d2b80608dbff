"""Config objects: small dataclasses validated on construction, versioned, that
round-trip to plain dicts. YAML recipes load into exactly these objects.

Validation reads the type hints, so a config declares its fields once::

    @dataclass
    class PruneConfig(Config):
        sparsity: float = field(default=0.5, metadata=between(0, 1, hi_open=True))

Errors are :class:`RecipeError` with the dotted key path, e.g.
``stages[2].sparsity: must be in [0, 1), got 1.5``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from edgesmith.errors import RecipeError

__all__ = ["Config", "between", "at_least", "LATER", "dataclass", "field", "RecipeError"]


def between(lo: float, hi: float, hi_open: bool = False, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open, hi_open)}


def at_least(lo: float, open_: bool = False) -> dict:
    return {"range": (lo, None, open_, False)}


# field metadata of a key added after runs existed: :meth:`Config.to_dict` leaves it out while it
# holds its default, so adding it changed no finished run's content key (``{**between(...), **LATER}``)
LATER = {"omit_default": True}


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, Config):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "null"
    return f"{v!r} ({type(v).__name__})"


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``tp``; return it converted."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key)
            except RecipeError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise RecipeError(key, f"expected {_type_name(tp)}, got {_describe(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(
                key, f"must be one of {', '.join(repr(c) for c in choices)}, got {_describe(value)}{hint}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(key, f"expected a list, got {_describe(value)}")
        (item,) = get_args(tp)[:1] or (Any,)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(key, f"expected a mapping, got {_describe(value)}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        return tp.from_dict(value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(key, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise RecipeError(key, f"expected an integer, got {_describe(value)}")
        if abs(value) > MAX_INT:
            raise RecipeError(key, f"{value} is out of range (at most {MAX_INT:,} in magnitude)")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    value = float(value)  # YAML reads 3e-4 as a string
                except ValueError:
                    pass
            if not isinstance(value, float):
                raise RecipeError(key, f"expected a number, got {_describe(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise RecipeError(key, f"{value} is too large for a number") from None
        if not math.isfinite(value):
            raise RecipeError(key, f"must be a finite number, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(key, f"expected a string, got {_describe(value)}")
        return value
    return value


MAX_INT = 2**53  # exact in JSON and in a float
# Upper bounds by field name, for every config: a value past them is a typo, not a plan.
LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),  # numpy's seed range
    "epochs": (0, 10_000),
    "iterations": (0, 10_000_000),
    "warmup": (0, 1_000_000),
    "batch_size": (1, 1 << 20),
}


def _check_range(value: Any, rng: tuple, key: str) -> None:
    if value is None or not isinstance(value, (int, float)):
        return
    lo, hi, lo_open, hi_open = rng
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    )
    if bad:
        if hi is None:
            raise RecipeError(key, f"must be {'>' if lo_open else '>='} {lo}, got {value}")
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise RecipeError(key, f"must be in {left}{lo}, {hi}{right}, got {value}")


@dataclass
class Config:
    """Base of every config: validated construction, dict round trip, version."""

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            v = coerce(getattr(self, f.name), hints[f.name], f.name)
            if "range" in f.metadata:
                _check_range(v, f.metadata["range"], f.name)
            if f.name in LIMITS and isinstance(v, int) and not isinstance(v, bool):
                _check_range(v, (*LIMITS[f.name], False, False), f.name)
            object.__setattr__(self, f.name, v)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise RecipeError(field, message)."""

    @classmethod
    def from_dict(cls, data: Any, key: str = "") -> Config:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RecipeError(key, f"expected a mapping, got {_describe(data)}")
        names = {f.name for f in fields(cls) if f.init}
        unknown = [k for k in data if k not in names]
        prefix = f"{key}." if key else ""
        if unknown:
            k = unknown[0]
            close = difflib.get_close_matches(str(k), sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(names))}"
            raise RecipeError(f"{prefix}{k}", f"unknown key; {hint}")
        missing = [
            f.name
            for f in fields(cls)
            if f.init
            and f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise RecipeError(f"{prefix}{missing[0]}", "required key is missing")
        try:
            return cls(**data)
        except RecipeError as e:
            raise RecipeError(f"{prefix}{e.key}" if e.key else key, e.message) from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.metadata.get("omit_default") and v == f.default:
                continue
            out[f.name] = _to_plain(v)
        return out


def _to_plain(v: Any) -> Any:
    if isinstance(v, Config):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_to_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_plain(x) for k, x in v.items()}
    return v

