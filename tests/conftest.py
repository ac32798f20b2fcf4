"""Shared fixtures: seeded randomness, a scheduler that fails on compute, the shared data."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import dask
import numpy as np
import pytest

SHARED_DATA = Path(
    os.environ.get(
        "XDOWNSCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: on a shared, loaded machine OpenMP spin-waiting makes tiny
    operations up to 1000x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; tests never use unseeded randomness."""
    return np.random.default_rng(20231121)


class CountingScheduler:
    """A dask scheduler that counts computes and fails past ``max_computes`` (cf-xarray)."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"Too many dask computations were scheduled: {self.total_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if the code inside computes a dask graph (proves laziness)."""
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


def shared_file(relpath: str) -> Path:
    """Path of a file in ../shared/data, skipping the test cleanly when it is absent."""
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"shared data file {relpath} not found under {SHARED_DATA}")
    return path


@pytest.fixture(scope="module")
def cm():
    """A tiny random consistency UNet for precipitation-like data: 4x, 1 km, mm/h."""
    import torch

    from xdownscale.nn import ConsistencyModel, DownscalingModel, ModelCard, UNet

    torch.manual_seed(0)
    net = UNet(channels=(8, 16), attention=True)
    card = ModelCard(
        name="tiny-cm",
        units="mm/h",
        transform="log",
        scale_min=0.0,
        scale_max=4.0,
        factors=(4,),
        pixel_size=1.0,
        pixel_units="km",
    )
    return DownscalingModel(ConsistencyModel(net), card)


@pytest.fixture(scope="module")
def white():
    """Closed-form EDM denoiser of white noise (std 0.5) on a 16 x 16 grid, in K."""
    from xdownscale.nn import DownscalingModel, GaussianDenoiser

    den = GaussianDenoiser(np.zeros((1, 16, 16)), 0.25 * np.eye(256), sigma_max=80.0)
    return DownscalingModel(den, {"name": "white", "factors": (4,), "units": "K"})


def assert_usage_error(argv, capsys, message: str) -> None:
    """``xdownscale ARGV`` exits with code 2 and one line that holds ``message``, no traceback."""
    from xdownscale import cli

    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own checks
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
