"""Kolmogorov-flow generators: metadata, determinism, energy budget, stationarity, bias."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xdownscale import metrics, np_metrics  # noqa: E402
from xdownscale.datasets import kolmogorov as kolmo  # noqa: E402
from xdownscale.datasets import (  # noqa: E402
    kolmogorov_dataset,
    kolmogorov_flow,
    kolmogorov_flow_lowfi,
)
from xdownscale.grid import coarsen  # noqa: E402

SMALL = {"grid": 32, "size": 32, "viscosity": 0.01}  # Re = 100 on 32^2: chaotic and cheap


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny FFTs: one thread avoids oversubscription on shared CI machines."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _velocity(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) = (d psi/dy, -d psi/dx) with lap psi = -omega, on the periodic [0, 2 pi)^2."""
    n = w.shape[-1]
    k = np.fft.fftfreq(n, 1.0 / n)
    ky, kx = k[:, None], k[None, :]
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    psi = np.fft.fft2(w) / k2
    psi[..., 0, 0] = 0.0
    return np.fft.ifft2(1j * ky * psi).real, np.fft.ifft2(-1j * kx * psi).real


def test_import_xdownscale_does_not_import_torch():
    code = "import sys, xdownscale, xdownscale.datasets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cf_metadata_shapes_and_coordinates():
    w = kolmogorov_flow(
        3, n_trajectories=2, grid=16, size=8, viscosity=0.02, spinup=1.0, interval=0.5, seed=0
    )
    assert w.dims == ("time", "y", "x") and w.shape == (6, 8, 8)
    assert w.attrs["long_name"] == "vorticity" and w.attrs["units"] == "1"
    assert w.attrs["reynolds_number"] == pytest.approx(50.0)
    np.testing.assert_allclose(w.x.values, (np.arange(8) + 0.5) * 2 * np.pi / 8)
    assert w.x.attrs["axis"] == "X" and w.y.attrs["units"] == "1"
    np.testing.assert_allclose(w.model_time.values, [1.0, 1.5, 2.0] * 2)
    assert w.trajectory.values.tolist() == [0, 0, 0, 1, 1, 1]
    c = kolmogorov_flow_lowfi(2, n_trajectories=1, spinup=1.0, interval=1.0)
    np.testing.assert_allclose(
        c.x.values,
        coarsen(
            kolmogorov_flow(1, n_trajectories=1, grid=64, size=64, spinup=0.0, interval=1.0), 8
        ).x.values,
    )


def test_deterministic_by_seed():
    kw = dict(n_trajectories=2, spinup=2.0, interval=1.0, **SMALL)
    a = kolmogorov_flow(2, seed=5, **kw)
    b = kolmogorov_flow(2, seed=5, **kw)
    c = kolmogorov_flow(2, seed=6, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert float(abs(a - c).mean()) > 0.1 * float(abs(a).mean())
    lo = [
        kolmogorov_flow_lowfi(2, n_trajectories=2, spinup=5.0, interval=1.0, seed=s).values
        for s in (5, 5, 6)
    ]
    np.testing.assert_array_equal(lo[0], lo[1])
    assert not np.allclose(lo[0], lo[2])


def test_initial_condition_does_not_depend_on_batch_and_streams_are_independent():
    one = kolmogorov_flow(1, n_trajectories=1, spinup=0.0, **SMALL, seed=1)
    three = kolmogorov_flow(1, n_trajectories=3, spinup=0.0, **SMALL, seed=1)
    np.testing.assert_allclose(one.values[0], three.values[0], atol=1e-5)
    assert kolmo._stream_seed(1, 0) != kolmo._stream_seed(1, 1)


def test_energy_budget_closes_and_statistics_are_stationary():
    """Time mean of d E / dt = <u . f> - nu <omega^2> - alpha <|u|^2> vanishes after spin-up."""
    nu, alpha, n_t = SMALL["viscosity"], 0.1, 50
    w = kolmogorov_flow(n_t, n_trajectories=4, spinup=10.0, interval=1.0, seed=0, **SMALL)
    u, v = _velocity(w.values.astype(np.float64))
    forcing = np.sin(4 * w.y.values)[:, None]
    power = (u * forcing).mean((-2, -1))
    dissipation = nu * (w.values.astype(np.float64) ** 2).mean((-2, -1))
    drag = alpha * (u**2 + v**2).mean((-2, -1))
    assert power.mean() == pytest.approx(dissipation.mean() + drag.mean(), rel=0.05)
    energy = 0.5 * (u**2 + v**2).mean((-2, -1)).reshape(4, n_t)
    enstrophy = 0.5 * (w.values.astype(np.float64) ** 2).mean((-2, -1)).reshape(4, n_t)
    for series in (energy, enstrophy):
        # means of blocks of 5 time units (about independent), first half against second half
        blocks = series.reshape(4, n_t // 5, 5).mean(-1)
        first, second = blocks[:, : n_t // 10].ravel(), blocks[:, n_t // 10 :].ravel()
        se = np.sqrt(first.var(ddof=1) / first.size + second.var(ddof=1) / second.size)
        assert abs(first.mean() - second.mean()) < 4 * se
        assert abs(first.mean() - second.mean()) < 0.15 * second.mean()
    # without the spin-up the first snapshot (the initial condition) is far from equilibrium
    start = kolmogorov_flow(1, n_trajectories=4, spinup=0.0, seed=0, **SMALL)
    u0, v0 = _velocity(start.values.astype(np.float64))
    assert 0.5 * (u0**2 + v0**2).mean() < 0.6 * energy.mean()


@pytest.mark.slow
def test_lowfi_is_biased_against_coarsened_highfi():
    """Spectrum and one-point histogram of the low-fidelity data differ from C'(high-fidelity)
    far more than two independent high-fidelity sets differ from each other."""
    hf = kolmogorov_flow(12, n_trajectories=8, grid=64, size=64, spinup=10.0, interval=1.0, seed=0)
    coarse = coarsen(hf, 8)
    ref = coarse.where(coarse.trajectory < 4, drop=True)  # two independent halves
    other = coarse.where(coarse.trajectory >= 4, drop=True)
    lf = kolmogorov_flow_lowfi(12, n_trajectories=8, seed=0)
    assert lf.shape == (96, 8, 8) and ref.shape == other.shape == (48, 8, 8)
    for weighted in (False, True):  # spectrum
        bias = float(metrics.melr(lf, ref, weighted=weighted))
        noise = float(metrics.melr(other, ref, weighted=weighted))
        assert bias > 3 * noise, (weighted, bias, noise)
    assert float(metrics.kld(lf, ref)) > 3 * float(metrics.kld(other, ref))
    # one-point histogram, pooled over the grid (per-point samples of 48 are too few)
    pooled = {k: v.values.ravel() for k, v in (("lf", lf), ("ref", ref), ("other", other))}
    for f in (np_metrics.wasserstein, np_metrics.kld):
        bias, noise = f(pooled["lf"], pooled["ref"]), f(pooled["other"], pooled["ref"])
        assert bias > 3 * noise, (f.__name__, bias, noise)
    # the low-fidelity flow is less energetic: variance of the coarse vorticity
    assert float(lf.var()) < 0.7 * float(ref.var())


def test_blow_up_is_reported():
    with pytest.raises(FloatingPointError, match="blew up"):
        kolmogorov_flow(1, n_trajectories=1, grid=16, size=16, cfl=20.0, max_dt=2.0, spinup=50.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": 15}, "grid=15 is not allowed; use an even integer >= 8"),
        ({"size": 256}, "size=256 is not allowed; use at most grid=128"),
        ({"size": 7}, "size=7 is not allowed"),
        ({"n_snapshots": 0}, "n_snapshots=0 is not allowed; use a positive integer"),
        ({"viscosity": -1.0}, "viscosity=-1.0 is not allowed; use a positive number"),
        ({"spinup": -1.0}, "spinup=-1.0 is not allowed"),
        ({"drag": -0.1}, "drag=-0.1 is not allowed"),
        ({"forcing_wavenumber": 50}, "forcing_wavenumber=50 is not allowed"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kolmogorov_flow(**kwargs)


def test_dataset_builder_splits_and_trims(monkeypatch):
    small_hf = functools.partial(
        kolmogorov_flow, grid=16, size=16, viscosity=0.02, spinup=0.5, interval=0.5
    )
    small_lf = functools.partial(kolmogorov_flow_lowfi, spinup=0.5, interval=0.5)
    monkeypatch.setattr(kolmo, "kolmogorov_flow", small_hf)
    monkeypatch.setattr(kolmo, "kolmogorov_flow_lowfi", small_lf)
    fine, coarse = kolmogorov_dataset(5, 7, n_trajectories=2, seed=3)
    assert fine.shape == (5, 16, 16) and coarse.shape == (7, 8, 8)
    assert fine.trajectory.values.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="n_fine=0 is not allowed"):
        kolmogorov_dataset(0, 5)
