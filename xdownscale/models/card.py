"""The model card: how to use a model and what it is (plain data, no torch).

One class for the engine and the model zoo: :func:`xdownscale.sample` reads the fields it
needs (units, transform, scaling, noise range, factors, pixel size, target spectrum); a reader
gets the descriptive ones (version, description, licence, training, metrics, network), which
live in ``extra`` so that any card round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..transforms import LOG_EPS, log_forward, log_inverse

__all__ = ["REQUIRED_EXTRA", "ModelCard"]

#: ``extra`` keys every card written by the zoo carries.
REQUIRED_EXTRA = ("version", "description", "network", "training", "licence")


@dataclass(repr=False)
class ModelCard:
    """A model card: what :func:`xdownscale.sample` needs to know about a model, and what a
    reader needs (plain data, no torch).

    The descriptive fields live in ``extra`` and are exposed as read-only properties
    (:attr:`version`, :attr:`description`, :attr:`licence`, :attr:`network`,
    :attr:`training`, :attr:`metrics`). ``repr`` gives a readable text summary and
    ``_repr_html_`` a table for Jupyter.

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

    Examples
    --------
    >>> card = ModelCard(name="demo", units="mm h-1", parameterisation="edm",
    ...                  extra={"version": "1", "description": "a demo card"})
    >>> card.version, card.description
    ('1', 'a demo card')
    >>> print(repr(card).splitlines()[0])
    ModelCard 'demo' v1: a demo card
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

        With ``"log"``, :func:`xdownscale.transforms.log_forward` (values below 0 are first
        set to 0, the transform's domain); then the min/max scaling to [-1, 1]. NaN stays NaN.

        Examples
        --------
        >>> import numpy as np
        >>> card = ModelCard(transform="log", scale_min=0.0, scale_max=10.0)
        >>> card.forward_transform(np.array([0.0])).tolist()
        [-1.0]
        """
        if self.transform == "log":
            a = log_forward(a, self.log_eps)
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
            a = log_inverse(a, self.log_eps)
        return a

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Read a card from its JSON text (see :meth:`to_json`)."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"the model card is not valid JSON ({err}); the file is corrupt"
            ) from err
        if not isinstance(d, dict):
            raise ValueError(f"the model card must be a JSON object, got {type(d).__name__}")
        return cls.from_dict(d)

    def to_json(self) -> str:
        """The card as JSON text (sorted keys, two-space indent)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    def _x(self, key: str, default: Any = None) -> Any:
        return self.extra.get(key, default)

    @property
    def version(self) -> str | None:
        """Model version string."""
        return self._x("version")

    @property
    def description(self) -> str | None:
        """One-paragraph description."""
        return self._x("description")

    @property
    def licence(self) -> str | None:
        """Licence of the weights and notes on the training data's terms."""
        return self._x("licence")

    @property
    def network(self) -> dict:
        """Network configuration (``{"class": "UNet", "config": {...}}``)."""
        return self._x("network", {})

    @property
    def training(self) -> dict:
        """Training data, steps, hardware, date, options."""
        return self._x("training", {})

    @property
    def metrics(self) -> dict:
        """Evaluation metrics (may be empty)."""
        return self._x("metrics", {})

    def _rows(self) -> list[tuple[str, str]]:
        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.4g}"
            if isinstance(v, dict):
                return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return str(v)

        tr = (
            "identity"
            if self.transform == "identity"
            else (f"log(x + {self.log_eps:g}) - log({self.log_eps:g})")
        )
        if self.scale_min is not None:
            tr += f", then [{self.scale_min:.4g}, {self.scale_max:.4g}] -> [-1, 1]"
        rows = [
            ("variable", f"{self.variable or '-'} (standard_name {self.standard_name or '-'})"),
            ("units", str(self.units or "-")),
            ("transform", tr),
            ("parameterisation", str(self.parameterisation)),
            (
                "sigma_data / min / max",
                " / ".join(
                    "-" if v is None else f"{v:g}"
                    for v in (self.sigma_data, self.sigma_min, self.sigma_max)
                ),
            ),
            (
                "pixel size",
                f"{self.pixel_size:g} {self.pixel_units or ''}".strip() if self.pixel_size else "-",
            ),
            ("factors", ", ".join(str(f) for f in self.factors) or "any"),
            ("target spectrum", f"{len(self.target_psd)} rings" if self.target_psd else "none"),
            ("network", fmt(self.network)),
        ]
        rows += [(f"training: {k}", fmt(v)) for k, v in self.training.items()]
        rows += [(f"metric: {k}", fmt(v)) for k, v in self.metrics.items()]
        rows += [("licence", str(self.licence or "-")), ("sha256", str(self.sha256 or "-"))]
        return rows

    def __repr__(self) -> str:
        head = f"ModelCard {self.name!r}" + (f" v{self.version}" if self.version else "")
        if self.description:
            head += f": {self.description}"
        width = max(len(k) for k, _ in self._rows())
        return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in self._rows()])

    def _repr_html_(self) -> str:
        esc = html.escape
        head = f"<b>{esc(self.name)}</b>" + (f" v{esc(str(self.version))}" if self.version else "")
        desc = f"<p>{esc(self.description)}</p>" if self.description else ""
        body = "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th>"
            f"<td style='text-align:left'>{esc(v)}</td></tr>"
            for k, v in self._rows()
        )
        return (
            f"<div class='xdownscale-card'><p>ModelCard {head}</p>{desc}<table>{body}</table></div>"
        )
