"""The model zoo: list, describe, fetch and load pretrained downscaling models safely.

``import xdownscale.models`` does not import torch; :func:`load`, :func:`describe` and
:func:`save` import it when used. :class:`ModelCard` is plain data.

- :func:`list_models` — registered names; :data:`DEFAULT_MODEL` ships inside the package.
- :func:`fetch` / :func:`fetch_all` — the weight file(s), downloaded with pooch into
  :func:`cache_dir` (``$XDOWNSCALE_CACHE``) from :func:`base_url` (``$XDOWNSCALE_BASE_URL``) and
  checked against the registered sha256.
- :func:`load` — a :class:`xdownscale.nn.DownscalingModel` from ``None`` (the default), a name
  or a path; the file's hash is computed (and checked) before it is read with
  ``torch.load(weights_only=True)``.
- :func:`save` — write a model as one weight file (state dict + card JSON).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .card import ModelCard
from .registry import DEFAULT_MODEL, base_url, cache_dir, fetch, fetch_all, list_models

if TYPE_CHECKING:
    from ..nn.model import DownscalingModel

__all__ = [
    "DEFAULT_MODEL",
    "ModelCard",
    "base_url",
    "cache_dir",
    "describe",
    "fetch",
    "fetch_all",
    "list_models",
    "load",
    "save",
]


def __getattr__(name: str) -> Any:
    if name == "save":
        from .io import save

        return save
    raise AttributeError(f"module 'xdownscale.models' has no attribute {name!r}")


def load(
    model: str | os.PathLike | DownscalingModel | None = None, *, sha256: str | None = None
) -> DownscalingModel:
    """Load a downscaling model: the default, a registered name, a weight file, or pass one through.

    Parameters
    ----------
    model : None, str, path-like or DownscalingModel
        None: the embedded default model (:data:`DEFAULT_MODEL`, no network). A registered
        name (:func:`list_models`): fetched into the cache if needed (hash-checked). A path to a
        weight file written by :func:`xdownscale.train` or :func:`save`: its sha256 is computed
        and recorded in the card. A :class:`~xdownscale.nn.DownscalingModel` is returned as is.
    sha256 : str, optional
        Expected hash of a file given by path (a registered model always has one).

    Returns
    -------
    DownscalingModel
        On the CPU, in eval mode, with a :class:`ModelCard` whose ``sha256`` is the file's.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones) that is not a file either; hash
        mismatch; corrupt file; a file that is not a weight file, including a pickle that
        would run code (refused before anything in it executes).
    ConnectionError
        A registered model had to be downloaded and could not be (the message says how to
        work offline).
    TypeError
        If ``model`` is of another type.

    Examples
    --------
    >>> m = load()
    >>> m.card.name, m.card.factors, len(m.card.sha256)
    ('radar-8x', (8,), 64)
    """
    from ..nn.model import DownscalingModel
    from .io import load_file
    from .registry import REGISTRY, _unknown

    if isinstance(model, DownscalingModel):
        return model
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in REGISTRY:
        m = load_file(fetch(model), sha256=REGISTRY[model].sha256)
        m.source = f"registry:{model}"
        return m
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isfile(path):
            m = load_file(path, sha256=sha256)
            m.source = f"path:{os.path.abspath(path)}"
            return m
        raise ValueError(_unknown(str(model)) + f" (no file exists at {path!r} either)")
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        raise TypeError(
            f"model is a bare {type(model).__name__}; downscaling also needs its card (units, "
            "transform, factors): wrap it as xdownscale.nn.DownscalingModel(denoiser, card), "
            "or pass a registered name or a weight file"
        )
    raise TypeError(
        f"model must be None (the default), a registered name, a path or a DownscalingModel, "
        f"got {type(model).__name__}"
    )


def describe(model: str | os.PathLike | None = None) -> ModelCard:
    """The model card of a registered model (fetched if needed) or of a weight file.

    The card's ``repr`` is a readable summary (and Jupyter shows it as a table).

    Examples
    --------
    >>> card = describe()
    >>> card.units, card.parameterisation
    ('mm h-1', 'edm')
    """
    from .io import read_weights
    from .registry import REGISTRY, _unknown

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, str) and model in REGISTRY:
        card, _, _ = read_weights(fetch(model), REGISTRY[model].sha256)
        return card
    if isinstance(model, (str, os.PathLike)) and os.path.isfile(model):
        return read_weights(model)[0]
    raise ValueError(_unknown(str(model)))
