"""The in-memory downscaling model: a denoiser plus the card that says how to use it.

:class:`ModelCard` is plain data (no torch), so the model-zoo can read and write it from a
file; :class:`DownscalingModel` pairs it with a loaded denoiser. A process-level cache keyed by
a token lets dask tasks find the model without carrying it inside the task graph.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

__all__ = ["DownscalingModel", "ModelCard", "get_model", "register_model"]

LOG_EPS = 1e-4


def _xp_log(a):
    return torch.log(a) if torch.is_tensor(a) else np.log(a)


def _xp_exp(a):
    return torch.exp(a) if torch.is_tensor(a) else np.exp(a)


@dataclass
class ModelCard:
    """What :func:`xdownscale.sample` needs to know about a model (plain data, no torch).

    Attributes
    ----------
    name : str
        Name used in history lines and error messages.
    variable, standard_name : str, optional
        Variable the model was trained on.
    units : str, optional
        Units of the physical data; inputs with other ``units`` are refused.
    transform : {"identity", "log"}
        ``"log"`` is ``log(x + log_eps) - log(log_eps)`` (Hess et al. 2024), applied before the
        min/max scaling.
    log_eps : float
        The epsilon of the log transform (1e-4).
    scale_min, scale_max : float, optional
        Training min and max of the (log-)transformed data, mapped to -1 and 1. None skips the
        scaling.
    sigma_data, sigma_min, sigma_max : float, optional
        Noise parameters; None means "read them from the denoiser".
    parameterisation : {"edm", "consistency"}, optional
        None means "read it from the denoiser".
    factors : tuple of int
        Coarsening factors the model supports (empty: any).
    pixel_size : float, optional
        Native grid spacing of the model, in ``pixel_units``.
    pixel_units : str, optional
    periodic_x : bool
        Whether the model treats x as a periodic longitude.
    target_psd_wavenumber, target_psd : sequence of float, optional
        Radially averaged spectrum of the (transformed, scaled) training data, in cycles per
        grid cell, with :func:`xdownscale.psd`'s normalisation; used by ``scale="auto"``.
    sha256 : str, optional
        Hash of the weight file, when the model came from one.
    extra : dict
        Everything else (description, licence, training notes, metrics, network config).
    """

    name: str = "unnamed"
    variable: str | None = None
    standard_name: str | None = None
    units: str | None = None
    transform: Literal["identity", "log"] = "identity"
    log_eps: float = LOG_EPS
    scale_min: float | None = None
    scale_max: float | None = None
    sigma_data: float | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    parameterisation: Literal["edm", "consistency"] | None = None
    factors: tuple[int, ...] = ()
    pixel_size: float | None = None
    pixel_units: str | None = None
    periodic_x: bool = False
    target_psd_wavenumber: Sequence[float] | None = None
    target_psd: Sequence[float] | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.transform not in ("identity", "log"):
            raise ValueError(
                f"transform={self.transform!r} is not supported; use 'identity' or 'log' "
                "(log(x + 1e-4) - log(1e-4), Hess et al.)"
            )
        if (self.scale_min is None) != (self.scale_max is None) or (
            self.scale_min is not None and not self.scale_max > self.scale_min  # type: ignore[operator]
        ):
            raise ValueError(
                f"give both scale_min < scale_max or neither, got scale_min={self.scale_min}, "
                f"scale_max={self.scale_max}"
            )
        self.factors = tuple(int(f) for f in self.factors)
        if (self.target_psd is None) != (self.target_psd_wavenumber is None):
            raise ValueError("give both target_psd and target_psd_wavenumber, or neither")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Build a card from a mapping; unknown keys go into :attr:`extra`."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names and k != "extra"}
        extra = dict(d.get("extra", {}))
        extra.update({k: v for k, v in d.items() if k not in names})
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The card as a plain mapping (lists instead of arrays)."""
        out = dataclasses.asdict(self)
        for k in ("target_psd", "target_psd_wavenumber", "factors"):
            if out[k] is not None:
                out[k] = [float(v) if k != "factors" else int(v) for v in out[k]]
        return out

    def forward_transform(self, a):
        """Physical values -> model space (numpy, xarray or torch).

        With ``"log"``, values below 0 are first set to 0 (the transform's domain; upsampling
        and the low-pass can ring slightly below 0). NaN stays NaN.

        Examples
        --------
        >>> import numpy as np
        >>> card = ModelCard(transform="log", scale_min=0.0, scale_max=10.0)
        >>> card.forward_transform(np.array([0.0])).tolist()
        [-1.0]
        """
        if self.transform == "log":
            a = a.clamp_min(0.0) if torch.is_tensor(a) else np.maximum(a, 0.0)
            a = _xp_log(a + self.log_eps) - float(np.log(self.log_eps))
        if self.scale_min is not None:
            a = 2.0 * (a - self.scale_min) / (self.scale_max - self.scale_min) - 1.0  # type: ignore[operator]
        return a

    def inverse_transform(self, a):
        """Model space -> physical values; with ``"log"`` the result is clipped at 0.

        Examples
        --------
        >>> import numpy as np
        >>> card = ModelCard(transform="log", scale_min=0.0, scale_max=10.0)
        >>> x = np.array([0.0, 0.5, 20.0])
        >>> bool(np.allclose(card.inverse_transform(card.forward_transform(x)), x))
        True
        """
        if self.scale_min is not None:
            a = (a + 1.0) * 0.5 * (self.scale_max - self.scale_min) + self.scale_min  # type: ignore[operator]
        if self.transform == "log":
            a = self.log_eps * (_xp_exp(a) - 1.0)
            a = a.clamp_min(0.0) if torch.is_tensor(a) else np.maximum(a, 0.0)
        return a


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
        a random ``"mem-..."`` id. Dask tasks carry only this token.

    Raises
    ------
    ValueError
        If the card's noise parameters contradict the denoiser's.

    Examples
    --------
    >>> from xdownscale.nn import ConsistencyModel, UNet
    >>> m = DownscalingModel(ConsistencyModel(UNet(channels=(8,), attention=False)), {"name": "tiny"})
    >>> m.card.name, m.parameterisation, m.sigma_data
    ('tiny', 'consistency', 0.5)
    """

    denoiser: nn.Module
    card: ModelCard | dict = field(default_factory=ModelCard)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.denoiser, nn.Module):
            raise TypeError(
                f"denoiser must be a torch.nn.Module, got {type(self.denoiser).__name__}; wrap "
                "a raw network with xdownscale.nn.EDMDenoiser(net) or ConsistencyModel(net)"
            )
        if isinstance(self.card, dict):
            self.card = ModelCard.from_dict(self.card)
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

_MODELS: dict[str, DownscalingModel] = {}
_ON_DEVICE: dict[tuple[str, str], nn.Module] = {}
_LOCK = threading.Lock()
DEVICE_LOCKS: dict[str, threading.Lock] = {}


def register_model(model: DownscalingModel) -> str:
    """Put ``model`` in this process's cache and return its token."""
    with _LOCK:
        _MODELS.setdefault(model.token, model)
    return model.token


def get_model(token: str, device: torch.device | None = None) -> tuple[DownscalingModel, nn.Module]:
    """The cached model of ``token`` and its denoiser on ``device`` (moved there once).

    Raises
    ------
    LookupError
        If this process has no model with that token (e.g. a distributed worker that was not
        given it).
    """
    with _LOCK:
        model = _MODELS.get(token)
        if model is None:
            raise LookupError(
                f"model {token!r} is not loaded in this process; in-memory models work with "
                "dask's threaded and synchronous schedulers (the default) — with separate worker "
                "processes, load the model in each worker first, e.g. "
                "client.run(xdownscale.nn.register_model, model)"
            )
        if device is None:
            return model, model.denoiser
        key = (token, str(device))
        net = _ON_DEVICE.get(key)
        if net is None:
            net = model.denoiser
            if next(iter(net.parameters()), torch.empty(0)).device != device or any(
                b.device != device for b in net.buffers()
            ):
                net = copy.deepcopy(net).to(device)
            net.eval()  # sampling runs the denoiser in eval mode (no dropout)
            _ON_DEVICE[key] = net
        DEVICE_LOCKS.setdefault(str(device), threading.Lock())
        return model, net
