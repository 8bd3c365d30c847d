"""``fleetlog.packs.entry_points`` reads entry points without importing
``importlib.metadata`` (a tenth of a short command's start-up) and finds exactly what
``importlib.metadata.entry_points`` finds: the same entry points, in the same order, the
same first-found distribution of a name installed twice; where the path holds something
only ``importlib.metadata`` reads, it asks it."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from fleetlog import packs


@pytest.fixture(autouse=True)
def _read_again_after() -> Iterator[None]:
    """Each test changes the path or the finders; what it read is not kept for others."""
    yield
    packs.entry_points(packs.GROUP, refresh=True)


def _theirs(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.group) for ep in metadata.entry_points(group=group)]


def _ours(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.group) for ep in packs.entry_points(group, refresh=True)]


def _dist(site: Path, stem: str, entry_points: str | None) -> None:
    info = site / stem
    info.mkdir(parents=True)
    name = stem.partition("-")[0]
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_every_installed_group_is_read_the_same() -> None:
    assert packs._read_entry_points() is not None  # read here, not by importlib.metadata
    groups = {ep.group for ep in packs._read_entry_points() or ()} | {"fleetlog.machines"}
    for group in sorted(groups):
        assert _ours(group) == _theirs(group), group
    assert _ours("fleetlog.machines")  # the built-in pack, at least


def test_what_a_site_holds_is_read_as_importlib_metadata_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Rack_Pack-1.0.dist-info", "[g]\nfirst = rackpack:PACK\n")
    _dist(first, "zed-2.0.dist-info", None)  # no entry points at all
    _dist(
        first,
        "Odd.Name-1.0.egg-info",
        (
            "# a comment\n\nstray = before.any:section\n"
            "[g]\n  spaced   =  mod.sub : attr [extra]  \n"
            "[h]\nother=pkg\n[g]\nagain = pkg.more:thing\n"
        ),
    )
    _dist(first, "broken-1.0.dist-info", None)
    (first / "broken-1.0.dist-info" / "entry_points.txt").mkdir()  # unreadable: no points
    _dist(second, "rack.pack-9.dist-info", "[g]\nshadowed = other:PACK\n")  # same name
    _dist(second, "later-1.0.dist-info", "[g]\nlast = later\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    assert packs._read_entry_points() is not None
    for group in ("g", "h", "fleetlog.machines"):
        assert _ours(group) == _theirs(group), group
    # In directory order (the file system's); the second rack.pack is shadowed.
    assert sorted(name for name, _, _ in _ours("g")) == ["again", "first", "last", "spaced"]


@pytest.mark.parametrize("value", ["json", "json:loads", "json : dumps", "json:loads [x]"])
def test_an_entry_point_loads_what_importlib_metadata_loads(value: str) -> None:
    ours = packs.EntryPoint("n", value, "g").load()
    assert ours is metadata.EntryPoint("n", value, "g").load()


@pytest.mark.parametrize("value", ["json:", ":loads", "no such thing"])
def test_a_value_it_cannot_read_fails_as_in_importlib_metadata(value: str) -> None:
    with pytest.raises(Exception) as theirs:
        metadata.EntryPoint("n", value, "g").load()
    with pytest.raises(type(theirs.value)):
        packs.EntryPoint("n", value, "g").load()


def test_a_zip_on_the_path_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "site.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\n")
        z.writestr("zipped-1.0.dist-info/entry_points.txt", "[g]\nzipped = zmod:thing\n")
    monkeypatch.syspath_prepend(str(archive))
    assert packs._read_entry_points() is None
    assert _ours("g") == _theirs("g") == [("zipped", "zmod:thing", "g")]


def test_a_finder_of_its_own_is_left_to_importlib_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Finder:
        @staticmethod
        def find_distributions(context: Any = None) -> list[Any]:
            return []

        @staticmethod
        def find_spec(*args: Any) -> None:
            return None

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert packs._read_entry_points() is None
    assert _ours("fleetlog.machines") == _theirs("fleetlog.machines")


def test_a_line_importlib_metadata_refuses_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist(tmp_path, "bad-1.0.dist-info", "[g]\nno equals sign here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert packs._read_entry_points() is None
    with pytest.raises(TypeError):
        metadata.entry_points(group="g")
    with pytest.raises(TypeError):
        packs.entry_points("g", refresh=True)
