"""The value classes (``pytest_resumable.values``) behave as the dataclasses they replaced."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from pytest_resumable.values import Frozen, Value

MODULES = (
    "pytest_resumable.journal.records",
    "pytest_resumable.journal.reader",
    "pytest_resumable.history",
    "pytest_resumable.options",
    "pytest_resumable.plan",
    "pytest_resumable.worker",
)


def _classes() -> list[type[Value]]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Value)
                and obj.__module__ == name
                and obj not in (Value, Frozen)
            ):
                found.append(obj)
    return found


CLASSES = _classes()


def test_every_module_of_a_session_has_its_value_classes_found() -> None:
    # the count the replaced dataclasses had: a class left out would go unchecked below
    assert len(CLASSES) == 18


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fields_are_the_init_parameters_and_the_annotations_in_order(cls: type[Value]) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    annotated = [n for n in inspect.get_annotations(cls) if n != "_fields"]
    assert list(cls._fields) == parameters == annotated


def _sample(cls: type[Value], salt: int) -> list[object]:
    return [f"{name}-{salt}" for name in cls._fields]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_equality_hash_and_repr_are_those_of_the_equivalent_dataclass(cls: type[Value]) -> None:
    frozen = issubclass(cls, Frozen)
    twin = dataclasses.make_dataclass(cls.__name__, cls._fields, frozen=frozen)
    values, other = _sample(cls, 1), _sample(cls, 2)
    a, b, c = cls(*values), cls(*values), cls(*other)
    assert [getattr(a, name) for name in cls._fields] == values
    assert repr(a) == repr(twin(*values))
    assert (a == b) is True
    assert (a != b) is False
    assert (a == c) is False
    assert (a != c) is True
    assert a != twin(*values)  # another class, as a dataclass compares
    assert a.__eq__(object()) is NotImplemented
    if frozen:
        assert hash(a) == hash(b) == hash(twin(*values))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, cls._fields[0], "changed")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(a, cls._fields[0])
        assert getattr(a, cls._fields[0]) == values[0]
    else:
        with pytest.raises(TypeError, match="unhashable"):
            hash(a)
        setattr(a, cls._fields[0], "changed")
        assert getattr(a, cls._fields[0]) == "changed"
        assert a != b


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_mutable_defaults_are_never_shared(cls: type[Value]) -> None:
    required = [
        p
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
    ]
    args = [f"x{i}" for i in range(len(required))]
    first, second = cls(*args), cls(*args)
    for name in cls._fields:
        value = getattr(first, name)
        if isinstance(value, (dict, list, set)):
            assert value is not getattr(second, name), name
