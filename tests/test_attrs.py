"""The history line every verb writes."""

import re

from xdownscale import __version__
from xdownscale.attrs import add_history


def test_history_line_is_prepended_and_attrs_are_copied():
    attrs = {"history": "old line", "units": "K"}
    out = add_history(attrs, "did a thing")
    first, second = out["history"].split("\n")
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ xdownscale {__version__}: did a thing", first
    )
    assert second == "old line" and out["units"] == "K"
    assert attrs["history"] == "old line"  # the input is not modified


def test_history_starts_when_there_was_none():
    assert add_history({}, "x")["history"].endswith(": x")
