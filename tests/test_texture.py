"""sample(reference=): the reference's texture, its checks, and invariance (xdownscale.texture)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

import xdownscale
from xdownscale.nn import DownscalingModel, GaussianDenoiser

from .conftest import raise_if_dask_computes
from .test_sampling import _coarse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def white32() -> DownscalingModel:
    """Closed-form EDM denoiser of white temperature noise (std 0.5) on 32 x 32 cells of 1 km."""
    den = GaussianDenoiser(np.zeros((1, 32, 32)), 0.25 * np.eye(1024), sigma_max=80.0)
    card = {
        "name": "white32",
        "factors": (4,),
        "units": "K",
        "pixel_size": 1.0,
        "pixel_units": "km",
    }
    return DownscalingModel(den, card)


def _fine(rng, n, std, size=32, spacing=1.0, units="K"):
    coords = {
        d: xr.DataArray(np.arange(size) * spacing, dims=d, attrs={"units": "km"}) for d in "yx"
    }
    data = rng.normal(0.0, std, (n, size, size)).astype("float32")
    return xr.DataArray(data, dims=("time", "y", "x"), coords=coords, attrs={"units": units})


def _fine_to_anchor(fields) -> float:
    """Mean power at the scales the coarse (4 km) grid cannot resolve (k >= 1/4 per cell),
    relative to the power at the anchor (3/4 of the coarse Nyquist: 3/32 per cell)."""
    from xdownscale import np_texture

    k, lnp = np_texture.reference_spectrum(np.asarray(fields))
    return float(np.exp(lnp)[k >= 0.25].mean() / np.exp(np.interp(3 / 32, k, lnp)))


def test_a_reference_gives_the_samples_its_texture(rng, white32):
    # the wanted product: white noise of std 1, rougher than the model's (std 0.5)...
    coarse = xdownscale.coarsen(_fine(rng, 8, std=1.0), 4)  # its coarse fields, to downscale
    rough = _fine(rng, 8, std=1.0)  # other fine fields of it
    # ... or a smooth product (the same noise, Gaussian-filtered)
    smooth = rough.copy(data=ndimage.gaussian_filter(rough.values, (0, 1, 1), mode="wrap"))
    kw = dict(scale=2.0, device="cpu", seed=3)
    own = coarse.downscale.sample(white32, **kw)
    ref = coarse.downscale.sample(white32, reference=rough, **kw)
    smoothed = coarse.downscale.sample(white32, reference=smooth, **kw)
    # the fine-scale shape of the spectrum is the reference's, whichever it is
    assert _fine_to_anchor(own) / _fine_to_anchor(rough) < 0.25  # the model's: much smoother
    assert _fine_to_anchor(ref) / _fine_to_anchor(rough) == pytest.approx(1.0, abs=0.2)
    assert _fine_to_anchor(smoothed) / _fine_to_anchor(smooth) == pytest.approx(1.0, abs=0.2)
    # the scales the coarse grid resolves are kept, and so are the block means
    back = xdownscale.coarsen(ref.astype("float64"), 4)
    np.testing.assert_allclose(back.values, coarse.values, atol=1e-5)
    assert "fine-scale texture from a reference of 8 fields" in ref.attrs["history"]
    # a reference in other (convertible) units is converted first: the same gain
    in_c = (rough - 273.15).assign_attrs(units="degC")
    np.testing.assert_allclose(
        coarse.downscale.sample(white32, reference=in_c, **kw).values, ref.values, atol=1e-4
    )


def test_reference_results_do_not_depend_on_chunks_or_batch_size(rng, white32):
    coarse = _coarse(rng, (4, 8, 8), units="K")
    reference = _fine(rng, 4, std=1.0)
    kw = dict(scale=2.0, device="cpu", reference=reference)
    eager = coarse.downscale.ensemble(3, white32, **kw)
    with raise_if_dask_computes():  # calibrated at the call, computed lazily after
        lazy = coarse.chunk(time=1).downscale.ensemble(3, white32, batch_size=2, **kw)
    np.testing.assert_array_equal(lazy.values, eager.values)
    one = coarse.downscale.sample(white32, batch_size=1, **kw)
    np.testing.assert_array_equal(one.values, eager.isel(realization=0).values)


def test_scale_auto_takes_the_references_spectrum(rng, white32):
    coarse = _coarse(rng, (2, 8, 8), units="K")
    with pytest.raises(ValueError, match=r"scale='auto' needs the target spectrum .* reference="):
        coarse.downscale.sample(white32, device="cpu")
    out = coarse.downscale.sample(white32, reference=_fine(rng, 4, std=1.0), device="cpu")
    assert out.shape == (2, 32, 32) and np.isfinite(out.values).all()


def test_reference_errors(rng, white32):
    coarse = _coarse(rng, (2, 8, 8), units="K")
    kw = dict(scale=2.0, device="cpu")
    with pytest.raises(
        ValueError,
        match=r"reference has a grid spacing of 2 km but the output grid has 1 km "
        r"\(da's 4 km / factor 4\)",
    ):
        coarse.downscale.sample(white32, reference=_fine(rng, 4, 1.0, spacing=2.0), **kw)
    with pytest.raises(ValueError, match=r"reference has units 'mm/h' but model 'white32'"):
        coarse.downscale.sample(white32, reference=_fine(rng, 4, 1.0, units="mm/h"), **kw)
    with pytest.raises(
        ValueError, match=r"reference is 16 x 16 cells, but .* needs at least 32 x 32"
    ):
        coarse.downscale.sample(white32, reference=_fine(rng, 4, 1.0, size=16), **kw)
    with pytest.raises(ValueError, match="reference has no field with structure"):
        coarse.downscale.sample(white32, reference=_fine(rng, 4, 0.0), **kw)
    with pytest.raises(TypeError, match="reference"):
        coarse.downscale.sample(white32, reference=np.ones((4, 32, 32)), **kw)
