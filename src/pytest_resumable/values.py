"""Value classes: what ``@dataclass`` gave the records, plans and settings, without its cost at
import.

A dataclass generates its methods as source text and compiles them when its module is
imported. On CPython 3.11 that was 66 M of the 96 M instructions importing the plugin's
modules took (``import pytest_resumable.controller``: 17 dataclasses), paid by every session.
A class here writes its ``__init__`` out; its fields are that ``__init__``'s parameters, in
their order (``_fields``, derived when the class is made). Equality, ``repr``, and for
:class:`Frozen` hashing and refusing assignment, are shared and read ``_fields``. They behave
as ``@dataclass`` and ``@dataclass(frozen=True)`` do: equal when of the same class with equal
fields, unhashable unless frozen, the same ``repr``. Fields compare as tuples, as dataclasses
did up to Python 3.12 (3.13's compare field by field: they differ for a value unequal to
itself, a NaN, which the codec never reads or writes). ``tests/test_values.py`` checks every
such class against its ``__init__``, its annotations and an equivalent dataclass.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar


class Value:
    """Fields compared and shown like a dataclass's (``eq=True``): mutable, so unhashable."""

    __slots__ = ()
    #: the fields: the parameters of the class's ``__init__``, in order
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        init = cls.__dict__.get("__init__")
        if init is not None:  # else the fields of the class it derives from
            code = init.__code__
            cls._fields = code.co_varnames[1 : code.co_argcount]

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    __hash__: ClassVar[None]  # type: ignore[assignment]  # set to None by defining __eq__

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({shown})"


class Frozen(Value):
    """A :class:`Value` that cannot be changed once made, hashed by its fields. ``__init__``
    fills the instance's namespace directly (``self.__dict__.update``)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
