"""The in-memory downscaling model: a denoiser plus the card that says how to use it.

:class:`DownscalingModel` pairs a loaded denoiser with its
:class:`~xdownscale.models.ModelCard` (plain data). A process-level cache keyed by a token
lets dask tasks find the model without carrying it inside the task graph.
"""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.card import ModelCard

__all__ = ["DownscalingModel", "ModelCard", "ModelRef", "cache_info", "get_model", "register_model"]


@dataclass
class DownscalingModel:
    """A denoiser (EDM denoiser or consistency model) with its :class:`ModelCard`.

    Parameters
    ----------
    denoiser : torch.nn.Module
        ``denoiser(x, sigma) -> x_hat`` with attributes ``parameterisation``, ``sigma_data``,
        ``sigma_min``, ``sigma_max`` (e.g. :class:`~xdownscale.nn.EDMDenoiser`,
        :class:`~xdownscale.nn.ConsistencyModel`, :class:`~xdownscale.nn.GaussianDenoiser`).
    card : ModelCard or dict
        How to use it; a dict is turned into a card (unknown keys go to ``extra``).

    Attributes
    ----------
    token : str
        Key of the process-level cache: ``"sha256:<hash>"`` when the card has a hash, else
        a random ``"mem-..."`` id. Dask tasks carry only :attr:`ref`.
    source : str or None
        Where :func:`xdownscale.models.load` found it: ``"registry:<name>"`` or
        ``"path:<file>"``; None for a model built in memory.

    Raises
    ------
    ValueError
        If the card's noise parameters contradict the denoiser's.

    Examples
    --------
    >>> from xdownscale.nn import ConsistencyModel, UNet
    >>> net = UNet(channels=(8,), attention=False)
    >>> m = DownscalingModel(ConsistencyModel(net), {"name": "tiny"})
    >>> m.card.name, m.parameterisation, m.sigma_data
    ('tiny', 'consistency', 0.5)
    """

    denoiser: nn.Module
    card: ModelCard = field(default_factory=ModelCard)  # a dict is turned into a card
    token: str = field(init=False)
    source: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.denoiser, nn.Module):
            raise TypeError(
                f"denoiser must be a torch.nn.Module, got {type(self.denoiser).__name__}; wrap "
                "a raw network with xdownscale.nn.EDMDenoiser(net) or ConsistencyModel(net)"
            )
        if isinstance(self.card, dict):
            self.card = ModelCard.from_dict(self.card)  # type: ignore[unreachable]
        if not isinstance(self.card, ModelCard):
            raise TypeError(f"card must be a ModelCard or a dict, got {type(self.card).__name__}")
        for name in ("parameterisation", "sigma_data", "sigma_min", "sigma_max"):
            on_card, on_net = getattr(self.card, name), getattr(self.denoiser, name, None)
            if on_net is None and on_card is None:
                raise ValueError(
                    f"{name} is unknown: the denoiser has no attribute {name!r} and the card "
                    f"does not give it; set card.{name}"
                )
            if on_card is not None and on_net is not None and on_card != on_net:
                raise ValueError(
                    f"card.{name}={on_card!r} contradicts the denoiser's {name}={on_net!r}; "
                    "fix the card or rebuild the wrapper"
                )
        if self.parameterisation not in ("edm", "consistency"):
            raise ValueError(
                f"parameterisation={self.parameterisation!r} is not supported; "
                "use 'edm' or 'consistency'"
            )
        self.token = f"sha256:{self.card.sha256}" if self.card.sha256 else f"mem-{uuid.uuid4().hex}"

    @property
    def ref(self) -> ModelRef:
        """The small, picklable identity a task carries instead of the model."""
        return ModelRef(self.token, self.source)

    def _get(self, name: str):
        v = getattr(self.denoiser, name, None)
        return getattr(self.card, name) if v is None else v

    @property
    def parameterisation(self) -> str:
        """``"edm"`` (denoiser) or ``"consistency"``."""
        return str(self._get("parameterisation"))

    @property
    def sigma_data(self) -> float:
        return float(self._get("sigma_data"))

    @property
    def sigma_min(self) -> float:
        return float(self._get("sigma_min"))

    @property
    def sigma_max(self) -> float:
        return float(self._get("sigma_max"))

    @property
    def name(self) -> str:
        return self.card.name  # type: ignore[union-attr]

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.denoiser.parameters())
        return (
            f"<DownscalingModel {self.name!r}: {self.parameterisation}, {n:,} parameters, "
            f"sigma in [{self.sigma_min:g}, {self.sigma_max:g}], token {self.token[:16]}>"
        )


# ----------------------------------------------------------------------------- process cache


@dataclass(frozen=True)
class ModelRef:
    """What a dask task carries to find its model in any process: a token and a source.

    ``token`` is ``"sha256:<hash of the weight file>"`` or ``"mem-<id>"``; ``source`` is
    ``"registry:<name>"``, ``"path:<file>"`` or None (in memory). A process that does not hold
    the model loads it from the source once (verifying the hash) and keeps it
    (:func:`get_model`); an in-memory model must have been put there by
    :func:`register_model` (on a distributed cluster: automatically, once per worker, by
    :mod:`xdownscale.cluster`).
    """

    token: str
    source: str | None = None


_MODELS: dict[str, DownscalingModel] = {}
_ON_DEVICE: dict[tuple[str, str, bool], nn.Module] = {}
_LOADS: dict[str, int] = {}
_LOCK = threading.RLock()
DEVICE_LOCKS: dict[str, threading.Lock] = {}


def register_model(model: DownscalingModel) -> str:
    """Put ``model`` in this process's cache and return its token."""
    with _LOCK:
        _MODELS.setdefault(model.token, model)
    return model.token


def cache_info() -> dict[str, int]:
    """How many times each model (by token) was loaded from its source in this process.

    Examples
    --------
    >>> isinstance(cache_info(), dict)
    True
    """
    with _LOCK:
        return dict(_LOADS)


def _load(ref: ModelRef) -> DownscalingModel:
    from ..models import load

    kind, _, where = (ref.source or "").partition(":")
    expected = ref.token.removeprefix("sha256:")
    if kind == "registry":
        model = load(where)
        if model.card.sha256 != expected:
            raise ValueError(
                f"model {where!r} has sha256 {model.card.sha256} in this process but the task "
                f"was built with {expected}: the workers run another version of xdownscale "
                "than the client; install the same version everywhere"
            )
    else:
        model = load(where, sha256=expected)
    _LOADS[ref.token] = _LOADS.get(ref.token, 0) + 1
    return model


def get_model(
    ref: ModelRef | str, device: torch.device | None = None, *, periodic_x: bool = False
) -> tuple[DownscalingModel, nn.Module]:
    """The model of ``ref`` and its denoiser on ``device`` (loaded and moved there once).

    With ``periodic_x`` the denoiser pads circularly along x (input on a global grid that
    wraps around; :func:`xdownscale.nn.networks.periodic_in_x`).

    Raises
    ------
    LookupError
        If this process has no in-memory model with that token and it has no source to load
        it from.
    """
    token = ref if isinstance(ref, str) else ref.token
    with _LOCK:
        model = _MODELS.get(token)
        if model is None:
            if isinstance(ref, ModelRef) and ref.source:
                model = _MODELS[token] = _load(ref)
            else:
                raise LookupError(
                    f"model {token!r} is not loaded in this process: it was built in memory, "
                    "and separate worker processes receive such a model automatically only "
                    "when a distributed Client exists before sample()/ensemble() is called; "
                    "create the Client first, or save the model (xdownscale.models.save) and "
                    "pass its path"
                )
        if device is None:
            return model, model.denoiser
        key = (token, str(device), bool(periodic_x))
        net = _ON_DEVICE.get(key)
        if net is None:
            from .networks import periodic_in_x

            net = periodic_in_x(model.denoiser) if periodic_x else model.denoiser
            if next(iter(net.parameters()), torch.empty(0)).device != device or any(
                b.device != device for b in net.buffers()
            ):
                net = copy.deepcopy(net).to(device)
            net.eval()  # sampling runs the denoiser in eval mode (no dropout)
            _ON_DEVICE[key] = net
        DEVICE_LOCKS.setdefault(str(device), threading.Lock())
        return model, net
