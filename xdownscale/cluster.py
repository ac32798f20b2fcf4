"""dask.distributed support: in-memory models reach the worker processes by themselves.

A task of :func:`xdownscale.sample` / :func:`xdownscale.ensemble` carries only the model's
identity (:class:`xdownscale.nn.ModelRef`). A worker process loads a registered model or a
weight file by itself, once, and keeps it (:func:`xdownscale.nn.get_model`, a per-process
cache keyed by the file's sha256: it also serves the threaded scheduler and needs no cluster).
A model that exists only in memory (fresh from :func:`xdownscale.train`, or built by hand) has
nowhere to be loaded from: when a distributed client is active, it is shipped to every worker
once, as a worker plugin (:class:`ModelPlugin`), which workers that join later receive too. The
graph never holds the model, so its size does not grow with the model's.

``distributed`` is imported only when it is already in use.
"""

from __future__ import annotations

import io
import sys
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .nn.model import DownscalingModel

__all__ = ["ModelPlugin", "current_client", "share_model"]

_SHIPPED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def current_client() -> Any | None:
    """The active ``distributed.Client`` (the default one), or None.

    Examples
    --------
    >>> current_client() is None  # no cluster in the doctests
    True
    """
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # no client
        return None


def _payload(model: DownscalingModel) -> bytes:
    """The model as the bytes of a weight file (state dict + card), for the workers."""
    import torch

    from .models.io import FORMAT, FORMAT_VERSION, tensors_sha256

    den = getattr(model.denoiser, "inner", model.denoiser)  # BoundedDenoiser wraps the weights
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in den.state_dict().items()}
    card = model.card
    d = card.to_dict()
    for key in ("parameterisation", "sigma_data", "sigma_min", "sigma_max"):
        if d[key] is None:
            d[key] = getattr(model, key)
    d["extra"] = {**d.get("extra", {}), "tensors_sha256": tensors_sha256(state)}
    from .models.card import ModelCard

    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "card": ModelCard.from_dict(d).to_json(),
        "state_dict": state,
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    return buf.getvalue()


def _from_payload(token: str, data: bytes) -> DownscalingModel:
    from .models.card import ModelCard
    from .models.io import _load_bytes, bounded, build_denoiser, tensors_sha256
    from .nn.model import DownscalingModel

    blob = _load_bytes(data, f"the in-memory model {token}")  # the restricted unpickler
    card = ModelCard.from_json(blob["card"])
    if tensors_sha256(blob["state_dict"]) != card.extra.get("tensors_sha256"):
        raise ValueError(f"the in-memory model {token} arrived damaged on this worker")
    den = build_denoiser(card)
    den.load_state_dict(blob["state_dict"], strict=True)
    model = DownscalingModel(bounded(den, card).eval(), card)
    model.token = token  # the client's identity, which the tasks carry
    return model


try:  # this module is imported only when distributed is in use
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is an optional dependency
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class ModelPlugin(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """A worker plugin that puts one in-memory model into each worker's model cache.

    Built by :func:`share_model`; the model travels as the bytes of a weight file and is read
    with the same restricted unpickler as a file (never arbitrary pickles).
    """

    def __init__(self, token: str, data: bytes) -> None:
        self.token = token
        self.data = data
        self.name = f"xdownscale-model-{token}"

    def setup(self, worker: Any = None) -> None:
        from .nn.model import register_model

        register_model(_from_payload(self.token, self.data))


def share_model(model: DownscalingModel, client: Any | None = None) -> bool:
    """Ship an in-memory model to every worker of ``client`` (default: the active one), once.

    Models that can be loaded from a source (a registered name or a weight file) are not
    shipped: each worker loads them itself. Returns True when a plugin was registered.

    Parameters
    ----------
    model : DownscalingModel
    client : distributed.Client, optional

    Examples
    --------
    >>> share_model(object(), client=None)  # no client: nothing to do
    False
    """
    client = client if client is not None else current_client()
    if client is None or getattr(model, "source", None) is not None:
        return False
    token = model.token  # type: ignore[attr-defined]
    done = _SHIPPED.setdefault(client, set())
    if token in done:
        return False
    client.register_plugin(ModelPlugin(token, _payload(model)), name=f"xdownscale-model-{token}")
    done.add(token)
    return True
