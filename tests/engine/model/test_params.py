from __future__ import annotations

import pytest

from fleetlog.dsl.spec import ParamSpec
from fleetlog.engine.model import ParamError, coerce, parse_assignments, resolve

SPECS = (
    ParamSpec("host", "str"),
    ParamSpec("cpus", "int", default=4, has_default=True),
    ParamSpec("ratio", "float", default=1.5, has_default=True),
    ParamSpec("egs", "bool", default=False, has_default=True),
    ParamSpec("storage", "enum", default="asm", has_default=True, choices=("exascale", "asm")),
    ParamSpec("target", "ref", ref_kind="kvm_host", default=None, has_default=True),
)


def test_strings_are_coerced_to_declared_types() -> None:
    got = resolve(SPECS, {"host": "n3", "cpus": "8", "egs": "yes", "target": "node3"}, "vm/x")
    assert got == {
        "host": "n3",
        "cpus": 8,
        "ratio": 1.5,
        "egs": True,
        "storage": "asm",
        "target": "kvm_host/node3",
    }


def test_errors_name_the_parameter_and_suggest() -> None:
    with pytest.raises(ParamError, match="'cpus': expected an integer, got 'many'"):
        resolve(SPECS, {"host": "h", "cpus": "many"}, "vm/x")
    with pytest.raises(ParamError, match="did you mean 'storage'"):
        resolve(SPECS, {"host": "h", "storag": "asm"}, "vm/x")
    with pytest.raises(ParamError, match="'host': is required"):
        resolve(SPECS, {}, "vm/x")
    with pytest.raises(ParamError, match="not one of exascale, asm"):
        coerce(SPECS[4], "nfs", "vm/x")
    with pytest.raises(ParamError, match="a kvm_host resource"):
        coerce(SPECS[5], "vm/other", "vm/x")


def test_assignments_split_on_the_first_equals() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="], "w") == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParamError.__mro__[1], match="expected NAME=VALUE"):
        parse_assignments(["novalue"], "w")
