"""Metadata the verbs write: the ``history`` line (CF conventions)."""

from __future__ import annotations

import datetime

from ._version import __version__

__all__ = ["add_history"]


def add_history(attrs: dict, text: str) -> dict:
    """Return ``attrs`` with a timestamped xdownscale line prepended to ``history``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} xdownscale {__version__}: {text}"
    out = dict(attrs)
    old = out.get("history")
    out["history"] = f"{line}\n{old}" if old else line
    return out
