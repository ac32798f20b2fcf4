"""``python -m xdownscale.models {list,describe,fetch}`` (also behind ``xdownscale fetch``)."""

from __future__ import annotations

import argparse

from . import describe, fetch, fetch_all, list_models
from .registry import REGISTRY, base_url, cache_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xdownscale.models",
                                     description="List, describe and pre-fetch pretrained models.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered models")
    p_desc = sub.add_parser("describe", help="print a model card")
    p_desc.add_argument("name", nargs="?", default=None, help="name or path (default: the default model)")
    p_fetch = sub.add_parser("fetch", help="download weights into the cache (for offline use)")
    p_fetch.add_argument("names", nargs="*", help="registered names")
    p_fetch.add_argument("--all", action="store_true", help="every registered model")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in list_models():
            e = REGISTRY[name]
            where = "embedded" if e.embedded else "download"
            print(f"{name:<16} v{e.version:<4} {where:<9} {e.description}")
    elif args.command == "describe":
        print(repr(describe(args.name)))
    else:
        if not args.all and not args.names:
            parser.error("name the models to fetch, or pass --all")
        paths = fetch_all() if args.all else {n: fetch(n) for n in args.names}
        for name, path in paths.items():
            print(f"{name}: {path}")
        print(f"cache: {cache_dir()} (XDOWNSCALE_CACHE), base URL: {base_url()} (XDOWNSCALE_BASE_URL)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
