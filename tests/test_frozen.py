"""``@frozen`` is ``@dataclass(frozen=True, slots=True)``, made cheaply: the same class
in every way a caller can see, checked here against the class ``dataclasses`` makes from
the same body."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, ClassVar

import pytest

from fleetlog.frozen import frozen


def _spot(decorate: Callable[[type], type]) -> tuple[type, type]:
    """Two classes of the shapes the code base uses, made by ``decorate``."""

    class Spot:
        line: int = 0
        col: int = 0

    Spot = decorate(Spot)

    class Record:
        """A record with every kind of field."""

        KIND: ClassVar[str] = "record"

        name: str
        tags: tuple[str, ...] = ()
        payload: dict[str, Any] = field(default_factory=dict)
        where: Spot = field(default=Spot(), compare=False, repr=False)
        weight: float = field(default=1.0, hash=False)

        @property
        def upper(self) -> str:
            return self.name.upper()

    return Spot, decorate(Record)


# Module-level classes, so that pickle can find them by name.
DSpot, DRecord = _spot(dataclass(frozen=True, slots=True))
FSpot, FRecord = _spot(frozen)
for _cls, _name in ((DSpot, "DSpot"), (DRecord, "DRecord"), (FSpot, "FSpot"), (FRecord, "FRecord")):
    _cls.__qualname__ = _name


@frozen
class Empty:
    pass


def _made(spot: type, record: type) -> list[Any]:
    return [
        spot(),
        spot(3, 4),
        record("a"),
        record("b", ("x", "y"), {"k": [1]}, spot(1, 2), 2.5),
    ]


def _shown(text: str) -> str:
    return text.replace("FSpot", "Spot").replace("DSpot", "Spot").replace("FRecord", "Record")


def test_the_class_is_the_same() -> None:
    for d, f in ((DSpot, FSpot), (DRecord, FRecord)):
        assert f.__slots__ == d.__slots__
        assert f.__match_args__ == d.__match_args__
        assert repr(f.__dataclass_params__) == repr(d.__dataclass_params__)
        assert _shown(f.__doc__ or "") == _shown((d.__doc__ or "").replace("DRecord", "Record"))
        assert _shown(str(inspect.signature(f))) == _shown(str(inspect.signature(d)))
        shape = [(x.name, x.type, x.compare, x.hash, x.repr, x.init) for x in dataclasses.fields(d)]
        assert [
            (x.name, x.type, x.compare, x.hash, x.repr, x.init) for x in dataclasses.fields(f)
        ] == shape
        assert f.__init__.__qualname__ == d.__init__.__qualname__  # "…Spot.__init__"
    assert FSpot.__doc__ == "Spot(line: 'int' = 0, col: 'int' = 0)"
    assert FRecord.KIND == "record" and "KIND" not in FRecord.__slots__


def test_instances_behave_the_same() -> None:
    for d, f in zip(_made(DSpot, DRecord), _made(FSpot, FRecord), strict=True):
        assert _shown(repr(f)) == _shown(repr(d).replace("DRecord", "FRecord"))
        assert f == copy.copy(f) and (f != 1) is True
        assert _shown(repr(f.__getstate__())) == _shown(repr(d.__getstate__()))
        assert dataclasses.asdict(f) == dataclasses.asdict(d)
        if isinstance(f, FSpot):
            assert hash(f) == hash(d)
        else:  # a dict among the hashed fields, as dataclasses would have it
            with pytest.raises(TypeError, match="unhashable"):
                hash(f)
    assert FRecord("a", where=FSpot(9, 9)) == FRecord("a")  # compare=False
    assert hash(FRecord("a", weight=1.0, payload=None)) == hash(  # type: ignore[arg-type]
        FRecord("a", weight=9.0, payload=None)  # type: ignore[arg-type]
    )  # hash=False
    assert FRecord("a").payload is not FRecord("a").payload  # a fresh default each time
    assert FRecord("a").upper == "A"
    assert Empty() == Empty() and hash(Empty()) == hash(()) and repr(Empty()) == "Empty()"


def test_they_stay_frozen() -> None:
    spot = FSpot(1, 2)
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'line'"):
        spot.line = 5  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'col'"):
        del spot.col  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        spot.other = 1  # type: ignore[attr-defined]
    assert dataclasses.replace(spot, col=7) == FSpot(1, 7) and spot.col == 2


def test_pickles_cross_between_the_two() -> None:
    """The machine-spec cache holds pickles: an entry written by either loads in the
    other, since both store the field values in order."""
    for d, f in zip(_made(DSpot, DRecord), _made(FSpot, FRecord), strict=True):
        assert pickle.loads(pickle.dumps(f)) == f
        state = pickle.dumps(d).replace(b"DSpot", b"FSpot").replace(b"DRecord", b"FRecord")
        assert pickle.loads(state) == f
        back = pickle.dumps(f).replace(b"FSpot", b"DSpot").replace(b"FRecord", b"DRecord")
        assert pickle.loads(back) == d


def test_what_it_does_not_write_is_left_to_dataclasses() -> None:
    @frozen
    class Adjusted:
        value: int

        def __post_init__(self) -> None:
            object.__setattr__(self, "value", self.value + 1)

    assert Adjusted(1).value == 2

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @frozen
        class Misordered:
            a: int = 1
            b: int  # type: ignore[misc]
