"""Immutable records made cheaply: ``@frozen`` is ``@dataclass(frozen=True, slots=True)``
with the same fields and the same behaviour, at a third of the cost of making the class.

Why: CPython 3.11's ``dataclasses`` writes six methods of a frozen class as source text
and compiles each (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``); the compiler is most of what such a class costs, and a short command
such as ``fleetlog status`` makes some sixty of them (the event vocabulary, the machine
spec, the journal's records) before it reads anything. Here ``dataclasses`` still reads
the fields (annotations, defaults, ``field()`` options, ``ClassVar``, the slots), only
``__init__`` is compiled, because it runs once per record and must stay the
straight-line code ``dataclasses`` writes, and the other methods are closures over the
field names, which cost nothing to make.

The same as ``dataclass(frozen=True, slots=True)``: the fields and ``fields()``,
``__slots__``, ``__match_args__``, ``__dataclass_params__``, the signature and generated
``__doc__``, ``replace()``, ``asdict()``, pickling (the same state, so pickles made by
either load in the other), ``repr``, equality and hashing over the same fields as the same
tuples, ``FrozenInstanceError`` on assigning or deleting a field. One difference: a name
that is not a field is refused with ``FrozenInstanceError`` too, where 3.11's slotted
frozen classes raise a ``TypeError`` from ``super()`` (a known bug).

A class this does not write the methods of (an ``InitVar``, keyword-only fields, a field
left out of ``__init__``, ``__post_init__``, a dataclass base, its own ``__setattr__``)
is handed to ``dataclass(frozen=True, slots=True)`` itself: slower, never different.
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError, field, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

__all__ = ["frozen"]

_T = TypeVar("_T")


class _Factory:
    """The default of a field with a ``default_factory``, shown as ``dataclasses``
    shows it in a signature."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


@dataclass_transform(frozen_default=True, field_specifiers=(Field, field))
def frozen(cls: type[_T], /) -> type[_T]:
    """``cls`` as an immutable, slotted dataclass (see the module's docstring)."""
    if not _plain(cls):
        return dataclasses.dataclass(frozen=True, slots=True)(cls)
    body = dict(cls.__dict__)  # what the class itself defines, before dataclasses adds
    documented = bool(cls.__doc__)
    if not documented:  # written below once __init__ exists: dataclasses' own is thrown away
        cls.__doc__ = "-"
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False, slots=True)(cls)
    params = made.__dataclass_params__
    params.init = params.repr = params.eq = params.frozen = True
    own = fields(made)
    made.__init__ = _init(made, own)
    made.__setattr__, made.__delattr__ = _refusals(made, frozenset(f.name for f in own))
    made.__getstate__, made.__setstate__ = _state(made, tuple(f.name for f in own))
    if "__repr__" not in body:
        made.__repr__ = _repr(made, tuple(f.name for f in own if f.repr))
    if "__eq__" not in body:
        made.__eq__ = _eq(made, _values(tuple(f.name for f in own if f.compare)))
    explicit = body.get("__hash__", MISSING)
    if explicit is MISSING or (explicit is None and "__eq__" in body):
        hashed = [f.name for f in own if (f.compare if f.hash is None else f.hash)]
        made.__hash__ = _hash(made, _values(tuple(hashed)))
    if not documented:  # dataclasses' own: the signature, now that __init__ exists
        made.__doc__ = made.__name__ + str(inspect.signature(made)).replace(" -> None", "")
    result: type[_T] = made
    return result


def _plain(cls: type) -> bool:
    """Whether every field is a positional ``__init__`` argument and nothing else needs
    what ``dataclasses`` writes for a frozen class."""
    if any(hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:]):
        return False
    if hasattr(cls, "__post_init__") or {"__setattr__", "__delattr__"} & cls.__dict__.keys():
        return False
    for name, annotation in inspect.get_annotations(cls).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "InitVar" in text or "KW_ONLY" in text:
            return False
        declared = cls.__dict__.get(name)
        if isinstance(declared, Field) and (not declared.init or declared.kw_only is True):
            return False
    return True


def _init(cls: type, own: tuple[Field[Any], ...]) -> Callable[..., None]:
    """The ``__init__`` ``dataclasses`` writes for a frozen class: each field set through
    ``object.__setattr__``, a factory called when its argument was not given."""
    me = "__frozen_self__" if any(f.name == "self" for f in own) else "self"
    scope: dict[str, Any] = {"__frozen_set__": object.__setattr__, "__frozen_factory__": _FACTORY}
    args, lines, defaulted = [me], [], False
    for f in own:
        value = f.name
        if f.default is not MISSING:
            scope[f"__frozen_default_{f.name}__"] = f.default
            args.append(f"{f.name}=__frozen_default_{f.name}__")
        elif f.default_factory is not MISSING:
            scope[f"__frozen_make_{f.name}__"] = f.default_factory
            args.append(f"{f.name}=__frozen_factory__")
            value = f"__frozen_make_{f.name}__() if {f.name} is __frozen_factory__ else {f.name}"
        elif defaulted:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
        else:
            args.append(f.name)
        defaulted = defaulted or f.default is not MISSING or f.default_factory is not MISSING
        lines.append(f"    __frozen_set__({me}, {f.name!r}, {value})")
    source = f"def __init__({', '.join(args)}):\n" + ("\n".join(lines) or "    pass")
    exec(source, scope)  # the source is made here, from field names alone
    init: Callable[..., None] = scope["__init__"]
    init.__annotations__ = {**{f.name: f.type for f in own}, "return": None}
    _name(cls, init)
    return init


def _refusals(
    cls: type, names: frozenset[str]
) -> tuple[Callable[[Any, str, Any], None], Callable[[Any, str], None]]:
    """Every name refused on the class itself; a subclass that is not a dataclass may
    still set what is not a field."""
    owner: Any = cls  # mypy refuses a variable typed ``type`` as super()'s first argument

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is owner or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(owner, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is owner or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(owner, self).__delattr__(name)

    return _name(cls, __setattr__), _name(cls, __delattr__)


def _state(
    cls: type, names: tuple[str, ...]
) -> tuple[Callable[[Any], list[Any]], Callable[[Any, list[Any]], None]]:
    """Pickling of slots without ``__setattr__``: the field values in order, as
    ``dataclasses`` stores them. Each is set through its slot's own descriptor: loading
    the cached machine specs sets some 1,500 of them per command."""
    setters = tuple(cls.__dict__[name].__set__ for name in names)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for setter, value in zip(setters, state, strict=False):
            setter(self, value)

    return _name(cls, __getstate__), _name(cls, __setstate__)


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of these fields' values (``attrgetter`` of one name is not a tuple)."""
    if len(names) > 1:
        many: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
        return many
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _repr(cls: type, names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return reprlib.recursive_repr()(_name(cls, __repr__))


def _eq(cls: type, values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return _name(cls, __eq__)


def _hash(cls: type, values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return _name(cls, __hash__)


_F = TypeVar("_F", bound=Callable[..., Any])


def _name(cls: type, fn: _F) -> _F:
    """Named as ``dataclasses`` names what it writes: ``Class.__method__``."""
    fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
    fn.__module__ = cls.__module__
    return fn
