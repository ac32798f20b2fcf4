"""The model zoo's card: :class:`xdownscale.nn.ModelCard` plus descriptive fields and reprs.

The engine's card (:class:`xdownscale.nn.ModelCard`) holds what sampling needs; the zoo adds what
a reader needs — version, description, licence, training and evaluation notes, the network
configuration — kept in the card's ``extra`` mapping so that any engine card round-trips. This
module imports torch (through :mod:`xdownscale.nn`), so it is imported lazily.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

from ..nn.model import ModelCard as _EngineCard

__all__ = ["REQUIRED_EXTRA", "ModelCard"]

#: ``extra`` keys every card written by the zoo carries.
REQUIRED_EXTRA = ("version", "description", "network", "training", "licence")


@dataclasses.dataclass(repr=False)
class ModelCard(_EngineCard):
    """A model card: the engine's :class:`xdownscale.nn.ModelCard` with reader-facing fields.

    Same fields as :class:`xdownscale.nn.ModelCard`; the descriptive ones live in ``extra``
    and are exposed as read-only properties (:attr:`version`, :attr:`description`,
    :attr:`licence`, :attr:`network`, :attr:`training`, :attr:`metrics`). ``repr`` gives a
    readable text summary and ``_repr_html_`` a table for Jupyter.

    Examples
    --------
    >>> card = ModelCard(name="demo", units="mm h-1", parameterisation="edm",
    ...                  extra={"version": "1", "description": "a demo card"})
    >>> card.version, card.description
    ('1', 'a demo card')
    >>> print(repr(card).splitlines()[0])
    ModelCard 'demo' v1: a demo card
    """

    @classmethod
    def from_engine(cls, card: _EngineCard) -> ModelCard:
        """Wrap an engine card (its fields are copied; ``extra`` is copied one level deep)."""
        d = {f.name: getattr(card, f.name) for f in dataclasses.fields(_EngineCard)}
        d["extra"] = dict(d["extra"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Read a card from its JSON text (see :meth:`to_json`)."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"the model card is not valid JSON ({err}); the file is corrupt") from err
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

        tr = "identity" if self.transform == "identity" else (
            f"log(x + {self.log_eps:g}) - log({self.log_eps:g})"
        )
        if self.scale_min is not None:
            tr += f", then [{self.scale_min:.4g}, {self.scale_max:.4g}] -> [-1, 1]"
        rows = [
            ("variable", f"{self.variable or '-'} (standard_name {self.standard_name or '-'})"),
            ("units", str(self.units or "-")),
            ("transform", tr),
            ("parameterisation", str(self.parameterisation)),
            ("sigma_data / min / max", " / ".join(
                "-" if v is None else f"{v:g}" for v in (self.sigma_data, self.sigma_min, self.sigma_max)
            )),
            ("pixel size", f"{self.pixel_size:g} {self.pixel_units or ''}".strip()
             if self.pixel_size else "-"),
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
            f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<div class='xdownscale-card'><p>ModelCard {head}</p>{desc}<table>{body}</table></div>"
