"""The accessor: registration, cheap import, and equality with the wrapped functions."""

import subprocess
import sys

import numpy as np
import xarray as xr

import xdownscale as xd


def test_import_does_not_import_torch_or_ot():
    code = (
        "import sys, time; import xarray; t = time.perf_counter(); import xdownscale; "
        "dt = time.perf_counter() - t; "
        "print('torch' in sys.modules, 'ot' in sys.modules, dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_loaded, ot_loaded, _ = out.stdout.split()
    assert (torch_loaded, ot_loaded) == ("False", "False")


def test_accessor_registered_and_equals_functions(rng):
    da = xr.DataArray(rng.normal(size=(3, 16, 16)), dims=("time", "y", "x"))
    assert isinstance(da.downscale, xd.DownscaleAccessor)
    xr.testing.assert_identical(da.downscale.psd(), xd.psd(da))
    xr.testing.assert_identical(da.downscale.coarsen(2), xd.coarsen(da, 2))
    xr.testing.assert_identical(da.downscale.upsample(2, interpolation="bicubic"), xd.upsample(da, 2, interpolation="bicubic"))
    xr.testing.assert_identical(da.downscale.lowpass(0.2), xd.lowpass(da, 0.2))
    c = da.downscale.choose_scale(da * 2)
    assert c.k_star == xd.choose_scale(da, da * 2).k_star
    assert np.isfinite(c.sigma_star)
