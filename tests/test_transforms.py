"""The one log transform, on every kind of array the library passes it."""

import numpy as np
import pytest
import xarray as xr

from xdownscale.transforms import LOG_EPS, log_forward, log_inverse


def test_zero_maps_to_zero_and_negatives_are_clamped():
    out = log_forward(np.array([-3.0, 0.0, 1.0, np.nan]))
    assert out[0] == 0.0 and out[1] == 0.0 and np.isnan(out[3])
    assert out[2] == pytest.approx(np.log(1.0 + LOG_EPS) - np.log(LOG_EPS))


def test_round_trip_and_monotone(rng):
    x = rng.gamma(0.5, 3.0, 1000)
    np.testing.assert_allclose(log_inverse(log_forward(x)), x, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(log_forward(np.sort(x))) >= 0)
    assert log_inverse(np.array([-5.0]))[0] == 0.0  # clipped at 0


def test_precision_follows_the_input():
    assert log_forward(np.ones(2, np.float32)).dtype == np.float32
    assert log_forward(np.ones(2)).dtype == np.float64


def test_numpy_xarray_dask_and_torch_agree(rng):
    torch = pytest.importorskip("torch")
    x = rng.gamma(0.5, 3.0, (4, 5)).astype(np.float32)
    ref = log_forward(x)
    da = xr.DataArray(x, dims=("y", "x"), attrs={"units": "mm/h"})
    np.testing.assert_array_equal(log_forward(da).values, ref)
    np.testing.assert_array_equal(log_forward(da.chunk(y=2)).values, ref)
    np.testing.assert_allclose(log_forward(torch.from_numpy(x)).numpy(), ref, rtol=1e-6)
    np.testing.assert_allclose(
        log_inverse(torch.from_numpy(ref)).numpy(), log_inverse(ref), rtol=1e-5
    )
