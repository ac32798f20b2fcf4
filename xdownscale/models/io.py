"""The weight-file format: one file with the state dict and the model card, read safely.

A weight file is ``torch.save`` of a plain mapping::

    {"format": "xdownscale-weights", "format_version": 1,
     "card": "<model card as JSON text>",
     "state_dict": {"net.conv_in.conv.weight": <tensor>, ...}}

holding only strings, ints and tensors. It is read with ``torch.load(weights_only=True)``
*after* its sha256 has been computed from the same bytes (and compared with the expected hash
when there is one), so a file that was swapped or corrupted is never unpickled, and a file that
would need arbitrary objects — a pickle that would run code — is refused by torch's restricted
unpickler. The network is rebuilt from the card's configuration, never from pickled classes.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..nn.model import DownscalingModel
from ..nn.networks import UNet
from ..nn.precondition import ConsistencyModel, EDMDenoiser
from .card import ModelCard

__all__ = [
    "BoundedDenoiser",
    "bounded",
    "build_denoiser",
    "file_sha256",
    "load_file",
    "read_weights",
    "save",
    "tensors_sha256",
]

FORMAT = "xdownscale-weights"
FORMAT_VERSION = 1
_NETWORKS = {"UNet": UNet}
_WRAPPERS = {"edm": EDMDenoiser, "consistency": ConsistencyModel}
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict's tensors: names, dtypes, shapes and bytes, in name order.

    Written into every card (``extra["tensors_sha256"]``) and checked on every load, so a
    file whose tensors were damaged is refused even when it is loaded by path, without a
    registered hash.

    Examples
    --------
    >>> a = tensors_sha256({"w": torch.zeros(2)})
    >>> a == tensors_sha256({"w": torch.zeros(2)}) != tensors_sha256({"w": torch.ones(2)})
    True
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(
            t.numpy().tobytes()
            if t.dtype != torch.bfloat16
            else t.view(torch.int16).numpy().tobytes()
        )
    return h.hexdigest()


def _first_line(err: BaseException, limit: int = 200) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__


def build_denoiser(card: ModelCard) -> torch.nn.Module:
    """Rebuild the (untrained) denoiser that ``card`` describes.

    The card's ``extra["network"]`` names the architecture (``{"class": "UNet", "config":
    {...}}``, only classes of :mod:`xdownscale.nn` are allowed) and ``parameterisation``,
    ``sigma_data``, ``sigma_min`` and ``sigma_max`` give the wrapper.

    Raises
    ------
    ValueError
        If the card lacks the network description or names an unknown class or
        parameterisation.
    """
    net_info = card.extra.get("network")
    if not isinstance(net_info, dict) or "class" not in net_info or "config" not in net_info:
        raise ValueError(
            f"model card {card.name!r} has no usable network description (extra['network'] = "
            f"{net_info!r}); it must be {{'class': 'UNet', 'config': UNet(...).config}}"
        )
    cls = _NETWORKS.get(net_info["class"])
    if cls is None:
        raise ValueError(
            f"model card {card.name!r} names network class {net_info['class']!r}; allowed: "
            f"{sorted(_NETWORKS)} — the file was written by another program or a newer xdownscale"
        )
    wrapper = _WRAPPERS.get(str(card.parameterisation))
    if (
        wrapper is None
        or card.sigma_data is None
        or card.sigma_min is None
        or card.sigma_max is None
    ):
        raise ValueError(
            f"model card {card.name!r} must give parameterisation ('edm' or 'consistency'), "
            f"sigma_data, sigma_min and sigma_max; got {card.parameterisation!r}, "
            f"{card.sigma_data!r}, {card.sigma_min!r}, {card.sigma_max!r}"
        )
    net = cls.from_config(dict(net_info["config"]))
    return wrapper(
        net, sigma_data=card.sigma_data, sigma_min=card.sigma_min, sigma_max=card.sigma_max
    )


class BoundedDenoiser(torch.nn.Module):
    """A denoiser whose output is clipped to the range of its (scaled) training data.

    The training data were scaled into ``[low, high]`` (``[-1, 1]`` by the min/max scaling),
    so the ideal denoiser ``E[x_0 | x_sigma]`` lies in that interval; clipping projects an
    imperfect network's estimate onto it. Without it, a small overshoot in the log-transformed
    space of precipitation becomes an absurd rain rate after the inverse transform. The card
    asks for it with ``extra["output_range"] = [low, high]``; the state dict is the inner
    denoiser's.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn import EDMDenoiser, UNet
    >>> d = BoundedDenoiser(EDMDenoiser(UNet(channels=(8,), attention=False)), -1.0, 1.0)
    >>> float(d(torch.full((1, 1, 8, 8), 50.0), 0.01).detach().max()), d.parameterisation
    (1.0, 'edm')
    """

    def __init__(self, inner: torch.nn.Module, low: float, high: float) -> None:
        super().__init__()
        if not low < high:
            raise ValueError(f"output_range must have low < high, got [{low}, {high}]")
        self.inner = inner
        self.low, self.high = float(low), float(high)
        for name in ("parameterisation", "sigma_data", "sigma_min", "sigma_max"):
            setattr(self, name, getattr(inner, name))

    @property
    def net(self) -> torch.nn.Module:
        net = self.inner.net
        assert isinstance(net, torch.nn.Module)
        return net

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.inner(x, sigma).clamp(self.low, self.high)


def bounded(den: torch.nn.Module, card: ModelCard) -> torch.nn.Module:
    """``den`` wrapped in a :class:`BoundedDenoiser` when the card asks for an output range."""
    rng = card.extra.get("output_range")
    if rng is None:
        return den
    if not (isinstance(rng, (list, tuple)) and len(rng) == 2):
        raise ValueError(f"model card {card.name!r} has output_range={rng!r}; expected [low, high]")
    return BoundedDenoiser(den, float(rng[0]), float(rng[1]))


def _refuse_package_dir(path: Path) -> None:
    try:
        inside = path.resolve().is_relative_to(PACKAGE_DIR)
    except OSError:
        inside = False
    if inside:
        raise ValueError(
            f"refusing to write {str(path)!r} inside the installed xdownscale package "
            f"({PACKAGE_DIR}); write your weights elsewhere, e.g. save(model, 'my-model.pt')"
        )


def save(
    model: DownscalingModel,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    _allow_package: bool = False,
) -> str:
    """Write ``model`` (state dict and card) to one weight file; return its sha256.

    Parameters
    ----------
    model : DownscalingModel
        Its denoiser must be rebuildable from the card (:func:`build_denoiser`): the card's
        ``extra["network"]`` describes the network.
    path : str or path-like
        Destination; written atomically (temporary file, then rename).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The hex sha256 of the written file (put it in a registry, or pass it to
        :func:`xdownscale.models.load` as ``sha256=`` to pin the file).

    Raises
    ------
    ValueError
        If the file exists and ``overwrite`` is False, the path lies inside the installed
        package, or the card cannot rebuild the network.
    """
    path = Path(path)
    if not _allow_package:
        _refuse_package_dir(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    d = {**model.card.to_dict(), "sha256": None}
    d["extra"] = dict(d.get("extra") or {})
    for key in ("parameterisation", "sigma_data", "sigma_min", "sigma_max"):
        if d[key] is None:  # the card may leave them to the denoiser: record them in the file
            d[key] = getattr(model, key)
    card = ModelCard.from_dict(d)
    # the card must describe the network exactly: rebuild and compare the state-dict keys
    den = model.denoiser.inner if isinstance(model.denoiser, BoundedDenoiser) else model.denoiser
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous().clone()
        for k, v in den.state_dict().items()
    }
    rebuilt = build_denoiser(card).state_dict()
    if set(rebuilt) != set(state) or any(rebuilt[k].shape != state[k].shape for k in state):
        raise ValueError(
            f"the network described by the card of {card.name!r} does not match the model's "
            "weights; set card.extra['network'] = {'class': 'UNet', 'config': net.config}"
        )
    card.extra["tensors_sha256"] = tensors_sha256(state)
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "card": card.to_json(),
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weight files are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return file_sha256(path)


def _load_bytes(data: bytes, where: str) -> dict[str, Any]:
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        import re

        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f" (it asks for {found.group(1)})" if found else ""
        raise ValueError(
            f"refused to load {where}: it holds Python objects other than plain tensors and "
            f"strings{what} - a pickle that could run code - and is not an xdownscale weight "
            "file; it was not loaded. Only load weight files written by xdownscale "
            "(xdownscale.models.save) from sources you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError) as err:
        raise ValueError(
            f"{where} is corrupt or not an xdownscale weight file ({_first_line(err)}); "
            "delete it and fetch it again (xdownscale.models.fetch(name)), or write it again "
            "with xdownscale.models.save"
        ) from None
    bad = (
        not isinstance(blob, dict)
        or blob.get("format") != FORMAT
        or not isinstance(blob.get("card"), str)
        or not isinstance(blob.get("state_dict"), dict)
        or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in blob["state_dict"].items())
    )
    if bad:
        keys = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(
            f"{where} is not an xdownscale weight file (found {keys}; expected a mapping with "
            f"format={FORMAT!r}, 'card' and 'state_dict'); write weights with "
            "xdownscale.models.save"
        )
    if blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{where} has weight-file format version {blob.get('format_version')!r}; this "
            f"xdownscale reads version {FORMAT_VERSION}: upgrade xdownscale"
        )
    return blob


def read_weights(
    path: str | os.PathLike, sha256: str | None = None
) -> tuple[ModelCard, dict[str, torch.Tensor], str]:
    """Read a weight file safely: hash first, then the restricted unpickler.

    Parameters
    ----------
    path : str or path-like
    sha256 : str, optional
        Expected hex sha256; a mismatch raises before anything is unpickled.

    Returns
    -------
    (ModelCard, dict, str)
        The card (with ``sha256`` set to the file's hash), the state dict and the hash.

    Raises
    ------
    ValueError
        On a hash mismatch (of the file, or of its tensors against the hash in its card), an
        empty or corrupt file, a file that is not a weight file, a pickle that would need
        arbitrary objects, or a file without a tensor hash loaded without ``sha256``.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256.lower().removeprefix("sha256:"):
        raise ValueError(
            f"sha256 of {str(path)!r} is {digest}, expected {sha256}: the file is corrupt or "
            "was replaced; it was not loaded. Delete it and fetch it again "
            "(xdownscale.models.fetch(name)), or pass the right sha256"
        )
    if not data:
        raise ValueError(
            f"{str(path)!r} is empty (0 bytes): not a weight file; delete it and fetch or "
            "write it again"
        )
    blob = _load_bytes(data, repr(str(path)))
    card = ModelCard.from_json(blob["card"])
    want = card.extra.get("tensors_sha256")
    if want is None and sha256 is None:
        raise ValueError(
            f"{str(path)!r} carries no hash of its tensors (written by an older xdownscale), "
            "so a damaged file could not be told from a good one; pass the file's known "
            "sha256= to load it, then write it again with xdownscale.models.save to add the "
            "hash"
        )
    if want is not None and tensors_sha256(blob["state_dict"]) != want:
        raise ValueError(
            f"the tensors in {str(path)!r} do not match the hash in its card "
            f"({str(want)[:12]}...): the file is corrupt; it was not loaded. Delete it and "
            "fetch or write it again"
        )
    card.sha256 = digest
    return card, blob["state_dict"], digest


def load_file(path: str | os.PathLike, sha256: str | None = None) -> DownscalingModel:
    """A :class:`~xdownscale.nn.DownscalingModel` from a weight file (see :func:`read_weights`)."""
    card, state, _ = read_weights(path, sha256)
    den = build_denoiser(card)
    try:
        den.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"the weights in {str(path)!r} do not fit the network its card describes "
            f"({_first_line(err)}); the file is corrupt"
        ) from err
    return DownscalingModel(bounded(den, card).eval(), card)
