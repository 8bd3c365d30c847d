"""``{param}`` templates: parsed strictly, rendered shell-quoted, secrets redacted."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from fleetlog.dsl import TemplateError, placeholders, render
from fleetlog.dsl.interpolate import to_text

VALUES: dict[tuple[str, str | None], Any] = {
    ("name", None): "x; rm -rf /",
    ("host", None): "node3",
    ("source", "name"): "exa1_vm1",
    ("pw", None): "s3cret pass",
    ("count", None): 3,
    ("egs", None): False,
    ("empty", None): None,
}


def lookup(name: str, attr: str | None) -> Any:
    return VALUES[(name, attr)]


def test_placeholders_in_order_with_attrs() -> None:
    assert placeholders("vm_maker --clone {source.name} --name {name} {{x}} {host}") == [
        ("source", "name"),
        ("name", None),
        ("host", None),
    ]


def test_a_hostile_name_is_one_shell_word() -> None:
    out = render("vm_maker --name {name} --host {host}", lookup)
    assert out == "vm_maker --name 'x; rm -rf /' --host node3"
    assert shlex.split(out) == ["vm_maker", "--name", "x; rm -rf /", "--host", "node3"]


def test_quoting_adjacent_to_text_still_makes_one_word() -> None:
    out = render("escli chwallet --attributes user={name}", lookup)
    assert shlex.split(out) == ["escli", "chwallet", "--attributes", "user=x; rm -rf /"]


def test_secrets_interpolate_and_redact() -> None:
    real = render("mkwallet --password {pw}", lookup, secrets={"pw"})
    shown = render("mkwallet --password {pw}", lookup, secrets={"pw"}, redact=True)
    assert shlex.split(real)[-1] == "s3cret pass"
    assert shown == "mkwallet --password <secret:pw>"
    assert "s3cret" not in shown


def test_literal_braces_and_values_as_dsl_literals() -> None:
    out = render("awk '{{print $1}}' {count} {egs} {empty}", lookup)
    assert out == "awk '{print $1}' 3 false ''"
    assert (to_text(True), to_text(None), to_text(1.5)) == ("true", "", "1.5")


@pytest.mark.parametrize(
    ("template", "index", "reason"),
    [
        ("a {b", 2, "'{' is never closed"),
        ("a } b", 2, "single '}'"),
        ("{}", 0, "'{}' is not a param name"),
        ("{a.b.c}", 0, "'{a.b.c}' is not a param name"),
        ("{ host }", 0, "is not a param name"),
        ("x {1abc}", 2, "is not a param name"),
    ],
)
def test_malformed_templates(template: str, index: int, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        placeholders(template)
    assert info.value.index == index
    assert reason in info.value.reason
    assert str(info.value).startswith(f"bad template '{template}' at character {index}: ")


def test_lookup_errors_propagate() -> None:
    with pytest.raises(KeyError):
        render("{missing}", lookup)
