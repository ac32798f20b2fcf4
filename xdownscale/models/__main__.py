"""``python -m xdownscale.models {list,describe,fetch}``: the same as ``xdownscale models`` /
``xdownscale fetch`` (see :mod:`xdownscale.cli`)."""

from __future__ import annotations

from ..cli import main as _cli_main


def main(argv: list[str] | None = None) -> int:
    """``list`` / ``describe [NAME]`` as ``xdownscale models``; ``fetch`` as in the CLI."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("list", "describe"):
        return _cli_main(["models", *argv])
    return _cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
