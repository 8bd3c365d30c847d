"""The tail-keeping output cap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetlog.engine.backends.output import TailBuffer, cap_text


def test_small_output_is_untouched() -> None:
    buf = TailBuffer(10)
    buf.write(b"hello")
    assert buf.text() == "hello"
    assert cap_text("hello", 10) == "hello"


def test_keeps_the_tail_and_says_how_much_was_dropped() -> None:
    buf = TailBuffer(4)
    for chunk in (b"abc", b"def", b"gh"):
        buf.write(chunk)
    assert buf.text() == "[... 4 bytes truncated ...]\nefgh"
    assert buf.total == 8


@given(st.lists(st.binary(max_size=50)), st.integers(min_value=0, max_value=64))
def test_memory_stays_bounded(chunks: list[bytes], limit: int) -> None:
    buf = TailBuffer(limit)
    for chunk in chunks:
        buf.write(chunk)
    everything = b"".join(chunks)
    assert buf.total == len(everything)
    kept = everything[-limit:] if limit else b""
    assert buf.text().endswith(kept.decode("utf-8", errors="replace"))


def test_cap_text_survives_lone_surrogates() -> None:
    assert cap_text("\ud800", 10) == "\ud800"
    assert cap_text("\ud800" * 10 + "end", 6).endswith("end")
