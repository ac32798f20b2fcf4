"""Install trained weights into the package (``xdownscale/models/weights``) and the registry."""

from __future__ import annotations

import json
from pathlib import Path


def install(weights: str | Path, name: str, version: str = "1", description: str | None = None,
            metrics: dict | None = None) -> str:
    """Save ``weights`` as ``<name>-v<version>.pt`` inside the package, register it as embedded
    and return its sha256 (``metrics`` are written into the card first)."""
    from xdownscale.models import io as zio
    from xdownscale.models import load, registry

    model = load(weights)
    model.card.name = name  # the registry name and the card's agree, and so do the versions
    model.card.extra["version"] = str(version)
    if description:
        model.card.extra["description"] = description
    if metrics is not None:
        model.card.extra["metrics"] = metrics
    file = f"{name}-v{version}.pt"
    sha = zio.save(model, registry.WEIGHTS_DIR / file, overwrite=True, _allow_package=True)
    reg = json.loads(registry.REGISTRY_FILE.read_text())
    entry = reg.setdefault(name, {})
    entry.update({"file": file, "sha256": sha, "embedded": True, "version": version})
    entry["description"] = description or entry.get("description") or model.card.description
    registry.REGISTRY_FILE.write_text(json.dumps(reg, indent=2) + "\n")
    print(f"installed {registry.WEIGHTS_DIR / file} (sha256 {sha})")
    return sha
