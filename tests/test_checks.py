"""The shared input checks: arrays, numbers, options, +-inf, device names, memory budget."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from xdownscale import checks
from xdownscale._memory import MemoryBudgetError, check_memory, format_bytes, memory_budget

from .conftest import raise_if_dask_computes


def test_check_dataarray_refuses_other_types_with_the_fix():
    with pytest.raises(TypeError, match=r"ref must be an xarray.DataArray, got list; wrap it"):
        checks.check_dataarray([1.0], "ref")
    ds = xr.Dataset({"pr": ("x", [1.0]), "tas": ("x", [2.0])})
    with pytest.raises(
        TypeError,
        match=r"sim is an xarray.Dataset \(variables \['pr', 'tas'\]\); pass one of its variables, e.g. sim\['pr'\]",
    ):
        checks.check_dataarray(ds, "sim")
    da = xr.DataArray([1.0])
    assert checks.check_dataarray(da, "da") is da


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_values_are_refused(dtype):
    da = xr.DataArray(np.ones(3, dtype=dtype))
    with pytest.raises(
        TypeError, match=rf"da holds complex numbers \(dtype {dtype}\).*da.real or abs\(da\)"
    ):
        checks.check_real(da, "da")


def test_non_numbers_are_refused_and_ints_bools_accepted():
    with pytest.raises(
        TypeError, match=r"da must hold real numbers, got dtype <U1; .*astype\('float32'\)"
    ):
        checks.check_real(xr.DataArray(["a"]), "da")
    checks.check_real(xr.DataArray([1, 2]), "da")
    checks.check_real(xr.DataArray([True]), "da")


def test_infinities_are_counted_eagerly():
    da = xr.DataArray([1.0, np.inf, -np.inf, np.nan])
    with pytest.raises(
        ValueError, match=r"^da holds 2 infinite value\(s\) of 4; .*da.where\(np.isfinite\(da\)\)"
    ):
        checks.check_finite(da, "da")
    ok = xr.DataArray([1.0, np.nan])
    assert checks.check_finite(ok, "da") is ok  # NaN is a mask, not an error
    ints = xr.DataArray([1, 2])
    assert checks.check_finite(ints, "da") is ints


def test_infinities_in_dask_are_found_at_compute_and_laziness_is_kept():
    data = dsa.from_array(np.array([1.0, 2.0, np.inf, 4.0]), chunks=2)
    da = xr.DataArray(data, dims="x")
    with raise_if_dask_computes():
        checked = checks.check_finite(da, "ref")
    with pytest.raises(ValueError, match=r"^a chunk of ref holds 1 infinite value\(s\) of 2"):
        checked.compute()
    fine = xr.DataArray(dsa.from_array(np.arange(4.0), chunks=2), dims="x")
    np.testing.assert_array_equal(checks.check_finite(fine, "ref").values, np.arange(4.0))


def test_check_int():
    assert checks.check_int(np.int64(3), "n", 1) == 3
    with pytest.raises(TypeError, match=r"n must be an integer >= 1, got float 2.0"):
        checks.check_int(2.0, "n", 1)
    with pytest.raises(TypeError, match=r"n must be an integer, got bool True"):
        checks.check_int(True, "n")
    with pytest.raises(ValueError, match=r"q must be an integer in \[0, 4\], got 5"):
        checks.check_int(5, "q", 0, 4)
    with pytest.raises(ValueError, match=r"m must be an integer <= 2, got 3"):
        checks.check_int(3, "m", high=2)


def test_check_choice_and_number():
    assert checks.check_choice(None, "taper", (None, "hann")) is None
    with pytest.raises(
        ValueError, match=r"kind='x' is not supported; use one of \['a', 'b'\] \(hint\)"
    ):
        checks.check_choice("x", "kind", ("a", "b"), "(hint)")
    with pytest.raises(ValueError, match=r"kind=\[1\] is not supported"):
        checks.check_choice([1], "kind", ("a",))  # unhashable: refused, not a crash
    assert checks.check_number(1, "x", low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"x must be > 0, got 0"):
        checks.check_number(0, "x", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be <= 1, got 2"):
        checks.check_number(2, "x", high=1)
    with pytest.raises(TypeError, match=r"x must be a number, got str"):
        checks.check_number("1", "x")


@pytest.mark.parametrize(
    ("asked", "got"), [("cpu", "cpu"), (" CUDA ", "cuda"), ("cuda:1", "cuda:1")]
)
def test_device_names_are_normalised(asked, got):
    assert checks.resolve_device(asked) == got


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert checks.resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert checks.resolve_device("auto") == "cuda"


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "torch:cpu", ""])
def test_unknown_device_names(bad):
    with pytest.raises(
        ValueError, match=r"is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
    ):
        checks.resolve_device(bad)
    with pytest.raises(TypeError, match="device must be a string"):
        checks.resolve_device(1)


def test_memory_budget_and_its_error():
    assert memory_budget(1000) == 1000
    assert memory_budget(None, free=1000) == 800
    check_memory(100, "a thing", "fix it", max_memory=1000)
    with pytest.raises(
        MemoryBudgetError,
        match=r"^a thing needs about 1.95 KiB, more than the 1000 bytes available; fix it$",
    ) as info:
        check_memory(2000, "a thing", "fix it", max_memory=1000)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    assert checks.MemoryBudgetError is MemoryBudgetError
    assert [format_bytes(v) for v in (5, 2048, 3 * 2**20, 2**40)] == [
        "5 bytes",
        "2.00 KiB",
        "3.00 MiB",
        "1.00 TiB",
    ]
    assert checks.available_memory() is None or checks.available_memory() > 0


def test_grid_info_of_a_projected_grid():
    da = xr.DataArray(
        np.zeros((3, 4)),
        dims=("y", "x"),
        coords={
            "y": ("y", [0.0, 1000.0, 2000.0], {"units": "m"}),
            "x": ("x", [0.0, 1000.0, 2000.0, 3000.0], {"units": "m"}),
        },
    )
    info = checks.grid_info(da)
    assert (info.y, info.x, info.dx, info.dy, info.units, info.spacing) == (
        "y",
        "x",
        1000.0,
        1000.0,
        "m",
        1000.0,
    )
    assert not info.periodic_x


def test_as_factor_and_require_whole():
    assert checks.as_factor(3) == (3, 3)
    assert checks.as_factor((2, 4)) == (2, 4)
    with pytest.raises(ValueError, match=r"factor must be a positive integer or a pair"):
        checks.as_factor(0)
    da = xr.DataArray(np.zeros((4, 4)), dims=("y", "x")).chunk(x=2)
    with pytest.raises(
        ValueError, match=r"dim 'x' of da has 2 chunks; why — call da.chunk\(x=-1\)"
    ):
        checks.require_whole(da, ["y", "x"], "da", "why")
