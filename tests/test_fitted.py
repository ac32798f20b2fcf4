"""The one convention of the fitted objects: constructor options, fit(ref, hist), apply, save/open."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdownscale import OptimalTransportDebiaser, QuantileDeltaMapping
from xdownscale.fitted import Fitted

CLASSES = [QuantileDeltaMapping, OptimalTransportDebiaser]


@pytest.mark.parametrize("cls", CLASSES)
def test_same_verbs_and_argument_order(cls):
    assert issubclass(cls, Fitted)
    init = inspect.signature(cls.__init__).parameters
    assert all(p.kind == p.KEYWORD_ONLY for n, p in init.items() if n != "self")
    fit = list(inspect.signature(cls.fit).parameters)
    assert fit[:3] == ["self", "ref", "hist"]
    assert list(inspect.signature(cls.apply).parameters)[:2] == ["self", "sim"]
    for name in ("save", "open", "to_dataset", "from_dataset", "_repr_html_"):
        assert callable(getattr(cls, name))


def _series(rng, mu, n=500):
    t = pd.date_range("2000-01-01", periods=n)
    return xr.DataArray(
        rng.normal(mu, 1.0, (n, 2, 3)),
        dims=("time", "y", "x"),
        coords={"time": t},
        attrs={"units": "K"},
    )


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_state_round_trips_through_netcdf_and_zarr(cls, suffix, rng, tmp_path):
    ref, hist, sim = _series(rng, 2.0), _series(rng, 0.0), _series(rng, 0.5)
    obj = cls().fit(ref, hist)
    assert obj.is_fitted and isinstance(obj.state_, xr.Dataset)
    assert obj.state_.attrs["xdownscale_object"] == cls.__name__
    path = tmp_path / f"state{suffix}"
    obj.save(path)
    back = cls.open(path)
    xr.testing.assert_identical(back.apply(sim).drop_attrs(), obj.apply(sim).drop_attrs())
    again = cls.from_dataset(obj.to_dataset())
    np.testing.assert_array_equal(again.apply(sim).values, obj.apply(sim).values)
    assert back.apply(sim).attrs["units"] == "K"
    assert repr(back).startswith(f"<{cls.__name__} (fitted)")
    assert "<table>" in back._repr_html_()


@pytest.mark.parametrize("cls", CLASSES)
def test_unfitted_objects_say_what_to_do(cls, rng):
    obj = cls()
    assert not obj.is_fitted and "(not fitted)" in repr(obj)
    with pytest.raises(
        ValueError, match=rf"this {cls.__name__} is not fitted yet; call .fit\(ref, hist\)"
    ):
        obj.apply(_series(rng, 0.0))
    with pytest.raises(ValueError, match="not fitted yet"):
        obj.save("x.nc")


@pytest.mark.parametrize("cls", CLASSES)
def test_a_state_of_the_other_kind_is_refused(cls, rng):
    other = next(c for c in CLASSES if c is not cls)
    state = other().fit(_series(rng, 1.0), _series(rng, 0.0)).to_dataset()
    with pytest.raises(ValueError, match=rf"not a fitted {cls.__name__} state"):
        cls.from_dataset(state)
