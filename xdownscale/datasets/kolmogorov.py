"""Two-dimensional Kolmogorov flow: high-fidelity fine data and a biased low-fidelity coarse solver.

The benchmark of Wan et al. (2023, "NS 8x"): vorticity of forced 2-D incompressible
Navier-Stokes on the doubly periodic square [0, 2 pi)^2,

    d omega/dt + u . grad omega = nu lap omega - alpha omega + f(y),   u = (d psi/dy, -d psi/dx),
    lap psi = -omega,   f(y) = -k_f cos(k_f y)  (the curl of the body force sin(k_f y) e_x),

with ``nu = 1e-3`` (Re = 1 / nu = 1000 with unit force and length), drag ``alpha = 0.1`` and
``k_f = 4`` (Kochkov et al. 2021). Torch is imported when a generator runs, never at
``import xdownscale``.

Two solvers, deliberately different:

- :func:`kolmogorov_flow` (high fidelity): pseudo-spectral on ``grid x grid`` points with
  2/3-rule dealiasing, integrating-factor RK4 (viscosity and drag exact), time step from a CFL
  number; snapshots are spectrally resampled to ``size x size`` cell centres.
- :func:`kolmogorov_flow_lowfi` (low fidelity): the same equations on a grid ``8x`` coarser,
  no dealiasing, first-order semi-implicit Euler with a larger time step and a larger
  viscosity; snapshots are cell averages on the ``size x size`` coarse grid (identical
  coordinates to ``xdownscale.coarsen(kolmogorov_flow(...), 8)``). Its statistics are biased
  against coarsened high-fidelity data, as the LFLR data of Wan et al.
"""

from __future__ import annotations

import math
import time as _time
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    import torch

__all__ = ["kolmogorov_dataset", "kolmogorov_flow", "kolmogorov_flow_lowfi"]

TWO_PI = 2.0 * math.pi


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a dependency
        raise ImportError("the Kolmogorov-flow generators need PyTorch: pip install torch") from err
    return torch


# ----------------------------------------------------------------------------- spectral tools


class _Spectral:
    """Wavenumbers and operators of an ``n x n`` periodic grid on [0, 2 pi)^2 (rfft2 layout)."""

    def __init__(self, n: int, device: Any, dtype: Any, dealias: bool) -> None:
        torch = _torch()
        self.n = n
        ky = torch.fft.fftfreq(n, 1.0 / n, device=device, dtype=dtype)
        kx = torch.fft.rfftfreq(n, 1.0 / n, device=device, dtype=dtype)
        self.ky = ky[:, None].expand(n, kx.numel())
        self.kx = kx[None, :].expand(n, kx.numel())
        self.k2 = self.kx**2 + self.ky**2
        inv = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        self.inv_k2 = inv
        if dealias:
            cut = n / 3.0  # 2/3 rule: keep |k_i| < n/3
            self.mask = ((self.kx.abs() < cut) & (self.ky.abs() < cut)).to(dtype)
        else:
            nyq = n // 2  # drop the Nyquist modes (no real counterpart)
            self.mask = ((self.kx.abs() < nyq) & (self.ky.abs() < nyq)).to(dtype)

    def velocity_advection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``-FFT(u . grad omega)`` of a spectral vorticity, masked."""
        torch = _torch()
        n = self.n
        psi = w_hat * self.inv_k2
        # u = d psi/dy, v = -d psi/dx ; grad omega
        irfft = torch.fft.irfft2
        u = irfft(1j * self.ky * psi, s=(n, n))
        v = irfft(-1j * self.kx * psi, s=(n, n))
        wx = irfft(1j * self.kx * w_hat, s=(n, n))
        wy = irfft(1j * self.ky * w_hat, s=(n, n))
        return -torch.fft.rfft2(u * wx + v * wy) * self.mask

    def max_speed(self, w_hat: torch.Tensor) -> float:
        torch = _torch()
        n = self.n
        psi = w_hat * self.inv_k2
        u = torch.fft.irfft2(1j * self.ky * psi, s=(n, n))
        v = torch.fft.irfft2(-1j * self.kx * psi, s=(n, n))
        return float(torch.sqrt(u**2 + v**2).max())


def _forcing_hat(sp: _Spectral, k_f: int, amplitude: float, dtype: Any) -> torch.Tensor:
    """rfft2 of ``f(y) = -amplitude k_f cos(k_f y)`` on the solver grid."""
    torch = _torch()
    n = sp.n
    y = torch.arange(n, dtype=dtype, device=sp.k2.device) * (TWO_PI / n)
    f = (-amplitude * k_f * torch.cos(k_f * y))[:, None].expand(n, n)
    return torch.fft.rfft2(f) * sp.mask


def _initial_vorticity(
    batch: int, n: int, seed: int, k_peak: float, rms: float, dtype: Any, device: Any
) -> torch.Tensor:
    """Random band-limited vorticity (spectrum ~ k^4 exp(-(k/k_peak)^2)) with a given rms.

    Drawn on the CPU with a seeded ``torch.Generator`` so that it does not depend on the device.
    """
    torch = _torch()
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn((batch, n, n), generator=gen, dtype=torch.float64)
    ky = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64)[None, :]
    k = torch.sqrt(kx**2 + ky**2)
    amp = k**2 * torch.exp(-0.5 * (k / k_peak) ** 2)
    w = torch.fft.irfft2(torch.fft.rfft2(noise) * amp, s=(n, n))
    w = w - w.mean(dim=(-2, -1), keepdim=True)
    w = w * (rms / w.std(dim=(-2, -1), keepdim=True))
    return torch.fft.rfft2(w.to(dtype=dtype, device=device))


def _resample(w_hat: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Band-limited field (rfft2 on ``n x n``) sampled at the ``m x m`` cell centres.

    Keeps the modes with ``|k_i| < min(n, m) / 2``, shifts by half an output cell
    (``x_j = (j + 1/2) 2 pi / m``) and inverse-transforms on ``m x m`` (truncation when
    ``m < n``, exact trigonometric interpolation when ``m > n``).
    """
    torch = _torch()
    kk = min(n, m) // 2
    src = torch.cat([torch.arange(0, kk), torch.arange(n - kk + 1, n)]).to(w_hat.device)
    dst = torch.cat([torch.arange(0, kk), torch.arange(m - kk + 1, m)]).to(w_hat.device)
    sub = w_hat[..., src, :kk]
    ky = torch.cat([torch.arange(0, kk), torch.arange(-kk + 1, 0)]).to(torch.float64)[:, None]
    kx = torch.arange(kk, dtype=torch.float64)[None, :]
    shift = torch.exp(1j * (kx + ky) * (math.pi / m)).to(device=sub.device, dtype=sub.dtype)
    out = torch.zeros((*w_hat.shape[:-2], m, m // 2 + 1), dtype=w_hat.dtype, device=w_hat.device)
    out[..., dst, :kk] = sub * shift
    return torch.fft.irfft2(out, s=(m, m)) * (m * m) / (n * n)


# ----------------------------------------------------------------------------- time stepping


def _ifrk4_step(w_hat, sp, f_hat, lin, dt):
    """Integrating-factor RK4: the linear terms (viscosity, drag) are integrated exactly."""
    e_half = (lin * (0.5 * dt)).exp()
    e_full = e_half * e_half

    def rhs(w):
        return sp.velocity_advection(w) + f_hat

    a = rhs(w_hat)
    b = rhs(e_half * (w_hat + 0.5 * dt * a))
    c = rhs(e_half * w_hat + 0.5 * dt * b)
    d = rhs(e_full * w_hat + dt * e_half * c)
    return e_full * w_hat + (dt / 6.0) * (e_full * a + 2.0 * e_half * (b + c) + d)


def _euler_step(w_hat, sp, f_hat, lin, dt):
    """First-order semi-implicit Euler: explicit advection and forcing, implicit linear terms."""
    return (w_hat + dt * (sp.velocity_advection(w_hat) + f_hat)) / (1.0 - dt * lin)


def _run(
    *,
    n_snapshots: int,
    n_trajectories: int,
    grid: int,
    viscosity: float,
    drag: float,
    forcing_wavenumber: int,
    forcing_amplitude: float,
    spinup: float,
    interval: float,
    cfl: float,
    max_dt: float,
    seed: int,
    device: Any,
    dtype: Any,
    dealias: bool,
    scheme: str,
    output,
) -> tuple[np.ndarray, np.ndarray, dict]:
    torch = _torch()
    dtype = torch.float32 if dtype is None else dtype
    device = torch.device("cpu" if device is None else device)
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    sp = _Spectral(grid, device, dtype, dealias)
    f_hat = _forcing_hat(sp, forcing_wavenumber, forcing_amplitude, dtype).to(cdtype)
    lin = (-(viscosity * sp.k2) - drag).to(cdtype)
    step = _ifrk4_step if scheme == "ifrk4" else _euler_step
    w_hat = (
        _initial_vorticity(
            n_trajectories,
            grid,
            seed,
            k_peak=forcing_wavenumber,
            rms=forcing_wavenumber,
            dtype=dtype,
            device=device,
        ).to(cdtype)
        * sp.mask
    )
    dx = TWO_PI / grid
    n_steps = 0
    t0 = _time.perf_counter()

    def advance(w, duration):
        nonlocal n_steps
        t = 0.0
        while t < duration - 1e-12:
            speed = max(sp.max_speed(w), 1e-6)
            dt = min(cfl * dx / speed, max_dt)
            if scheme == "euler":  # forward Euler advection is stable for dt < 2 nu / |u|^2
                dt = min(dt, viscosity / speed**2)
            if not (math.isfinite(speed) and dt > 1e-5 * max_dt):
                raise FloatingPointError(
                    f"the Kolmogorov solver blew up at t = {t:.3g} (max speed {speed:.3g}; "
                    f"grid={grid}, viscosity={viscosity}, cfl={cfl}); lower cfl or max_dt, "
                    "or raise viscosity"
                )
            # land exactly on the end of the interval: equal sub-steps
            left = duration - t
            k = max(1, math.ceil(left / dt - 1e-9))
            chunk = min(k, 25)  # re-evaluate the CFL step every 25 steps
            h = left / k
            for _ in range(chunk):
                w = step(w, sp, f_hat, lin, h)
            n_steps += chunk
            t += chunk * h
            if not bool(torch.isfinite(w.real).all()):
                raise FloatingPointError(
                    f"the Kolmogorov solver blew up at t = {t:.3g} (grid={grid}, "
                    f"viscosity={viscosity}, cfl={cfl}); lower cfl or max_dt, or raise viscosity"
                )
        return w

    # FFTs of small grids gain nothing from intra-op threads and lose a lot on a busy machine:
    # run them on one CPU thread, and restore the caller's setting afterwards
    threads = torch.get_num_threads()
    if device.type == "cpu" and grid * grid * n_trajectories <= 64 * 64 * 8:
        torch.set_num_threads(1)
    try:
        w_hat = advance(w_hat, spinup)
        out = []
        times = []
        for i in range(n_snapshots):
            if i > 0:
                w_hat = advance(w_hat, interval)
            out.append(output(w_hat).to("cpu", torch.float64).numpy())
            times.append(spinup + i * interval)
    finally:
        torch.set_num_threads(threads)
    data = np.stack(out, axis=1)  # (trajectory, time, y, x)
    info = {
        "steps": n_steps,
        "seconds": _time.perf_counter() - t0,
    }
    return data, np.asarray(times), info


def _to_dataarray(data: np.ndarray, times: np.ndarray, attrs: dict, name: str) -> xr.DataArray:
    n_traj, n_t, m, _ = data.shape
    centres = (np.arange(m) + 0.5) * (TWO_PI / m)
    coords = {
        "y": ("y", centres, {"units": "1", "axis": "Y", "long_name": "y (domain [0, 2 pi))"}),
        "x": ("x", centres, {"units": "1", "axis": "X", "long_name": "x (domain [0, 2 pi))"}),
        "model_time": (
            "time",
            np.tile(times, n_traj),
            {"units": "1", "long_name": "model time since the initial condition"},
        ),
        "trajectory": ("time", np.repeat(np.arange(n_traj), n_t), {"long_name": "trajectory"}),
    }
    return xr.DataArray(
        data.reshape(n_traj * n_t, m, m).astype(np.float32),
        dims=("time", "y", "x"),
        coords=coords,
        name=name,
        attrs=attrs,
    )


def _check(name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")


def _validate(**kw: Any) -> None:
    for nm in ("n_snapshots", "n_trajectories"):
        v = kw[nm]
        _check(
            nm,
            v,
            bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1),
            "use a positive integer",
        )
    grid, size = kw["grid"], kw["size"]
    _check(
        "grid",
        grid,
        bool(isinstance(grid, (int, np.integer)) and grid >= 8 and grid % 2 == 0),
        "use an even integer >= 8",
    )
    _check(
        "size",
        size,
        bool(isinstance(size, (int, np.integer)) and size >= 2 and size % 2 == 0),
        "use an even integer >= 2",
    )
    for nm in ("viscosity", "interval", "cfl", "max_dt"):
        _check(nm, kw[nm], isinstance(kw[nm], (int, float)) and kw[nm] > 0, "use a positive number")
    _check("spinup", kw["spinup"], kw["spinup"] >= 0, "use a number >= 0")
    _check("drag", kw["drag"], kw["drag"] >= 0, "use a number >= 0")
    kf = kw["forcing_wavenumber"]
    _check(
        "forcing_wavenumber",
        kf,
        isinstance(kf, (int, np.integer)) and 1 <= kf < grid / 3,
        f"use an integer from 1 to below grid/3 = {grid / 3:.3g} (resolved by the solver)",
    )


def _stream_seed(seed: int, stream: int) -> int:
    """Independent seeds for the two solvers from one user seed (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def _attrs(solver: str, params: dict, info: dict) -> dict:
    return {
        "long_name": "vorticity",
        "units": "1",
        "comment": "nondimensional: domain [0, 2 pi)^2, unit forcing amplitude and length",
        "source": f"xdownscale.datasets: {solver}",
        "reynolds_number": params["forcing_amplitude"] / params["viscosity"],
        "forcing": f"{params['forcing_amplitude']} sin({params['forcing_wavenumber']} y) e_x",
        **{k: params[k] for k in ("viscosity", "drag", "spinup", "interval", "cfl", "seed")},
        "solver_steps": info["steps"],
        "solver_seconds": round(info["seconds"], 3),
    }


# ----------------------------------------------------------------------------- public API


def kolmogorov_flow(
    n_snapshots: int = 64,
    *,
    n_trajectories: int = 4,
    grid: int = 128,
    size: int = 64,
    viscosity: float = 1e-3,
    drag: float = 0.1,
    forcing_wavenumber: int = 4,
    forcing_amplitude: float = 1.0,
    spinup: float = 40.0,
    interval: float = 2.0,
    cfl: float = 0.5,
    max_dt: float = 0.05,
    seed: int = 0,
    device: str | None = None,
    dtype: torch.dtype | None = None,
) -> xr.DataArray:
    """High-fidelity vorticity snapshots of 2-D Kolmogorov flow (pseudo-spectral, dealiased).

    Parameters
    ----------
    n_snapshots : int
        Snapshots kept per trajectory, ``interval`` apart, after the spin-up.
    n_trajectories : int
        Independent trajectories integrated together as one batch (cheaper per snapshot than
        one long trajectory on a vectorised CPU or a GPU).
    grid : int
        Solver grid (``grid x grid`` points on [0, 2 pi)^2).
    size : int
        Output grid: the band-limited field sampled at ``size x size`` cell centres
        (``size <= grid``; modes with ``|k_i| >= size/2`` are dropped).
    viscosity, drag : float
        ``nu`` and ``alpha``; the Reynolds number is ``forcing_amplitude / nu``.
    forcing_wavenumber : int
        ``k_f`` of the body force ``forcing_amplitude sin(k_f y) e_x``.
    forcing_amplitude : float
        Amplitude of the body force.
    spinup : float
        Model time discarded before the first snapshot; the flow forgets its initial
        condition and reaches statistical equilibrium within about 20 time units.
    interval : float
        Model time between snapshots (decorrelation; see Notes).
    cfl : float
        Courant number ``max|u| dt / dx`` that sets the time step.
    max_dt : float
        Upper bound of the time step.
    seed : int
        Seed of the initial conditions; the output is a deterministic function of the
        arguments (on a given device and dtype).
    device : str, optional
        Torch device ("cpu", "cuda"); default CPU.
    dtype : torch.dtype, optional
        ``torch.float32`` (default) or ``torch.float64``.

    Returns
    -------
    xarray.DataArray
        Vorticity (float32), dims ``(time, y, x)`` with ``n_trajectories * n_snapshots``
        snapshots (trajectory-major); coordinates ``y``, ``x`` (cell centres
        ``(j + 1/2) 2 pi / size``), and ``model_time`` and ``trajectory`` along ``time``;
        parameters, solver steps and seconds in ``attrs``.

    Raises
    ------
    ValueError
        On non-positive or odd sizes, ``size > grid``, or a forcing the grid cannot resolve.
    FloatingPointError
        If the integration blows up (time step too large for the parameters).

    Notes
    -----
    The vorticity equation is in the module docstring. Pseudo-spectral with 2/3-rule
    dealiasing and integrating-factor RK4 (viscosity and drag integrated exactly); the time
    step is ``min(cfl dx / max|u|, max_dt)``, re-evaluated every 25 steps and shrunk so that
    snapshots fall exactly ``interval`` apart. With the defaults (Re = 1000, 128^2 solver,
    64^2 output) the step is about 0.006 (160 steps per time unit); the energy settles near
    1.2 and the enstrophy near 12 after about 20 time units, and the autocorrelation of the
    vorticity at a point is about 0.35 after 1 time unit and 0.1 after 2, hence
    ``interval=2``. Cost on one CPU core (float32): about 0.26 s per trajectory and time
    unit, i.e. ~0.5 s per snapshot after the spin-up.

    References: Kochkov et al. (2021), PNAS 118, e2101784118; Wan et al. (2023), NeurIPS.

    Examples
    --------
    >>> w = kolmogorov_flow(2, n_trajectories=1, grid=16, size=8, viscosity=2e-2,
    ...                     spinup=0.2, interval=0.2, seed=0)
    >>> w.dims, w.shape, w.attrs["long_name"]
    (('time', 'y', 'x'), (2, 8, 8), 'vorticity')
    """
    params = dict(locals())
    _validate(**params)
    _check("size", size, size <= grid, f"use at most grid={grid}")

    def output(w_hat):
        return _resample(w_hat, grid, size)

    data, times, info = _run(
        n_snapshots=n_snapshots,
        n_trajectories=n_trajectories,
        grid=grid,
        viscosity=viscosity,
        drag=drag,
        forcing_wavenumber=forcing_wavenumber,
        forcing_amplitude=forcing_amplitude,
        spinup=spinup,
        interval=interval,
        cfl=cfl,
        max_dt=max_dt,
        seed=_stream_seed(seed, 0),
        device=device,
        dtype=dtype,
        dealias=True,
        scheme="ifrk4",
        output=output,
    )
    solver = (
        f"kolmogorov_flow, pseudo-spectral {grid}x{grid}, 2/3 dealiasing, integrating-factor "
        f"RK4; output sampled at {size}x{size} cell centres"
    )
    return _to_dataarray(data, times, _attrs(solver, params, info), "vorticity")


def kolmogorov_flow_lowfi(
    n_snapshots: int = 64,
    *,
    n_trajectories: int = 32,
    grid: int = 16,
    size: int = 8,
    viscosity: float = 0.03,
    drag: float = 0.1,
    forcing_wavenumber: int = 4,
    forcing_amplitude: float = 1.0,
    spinup: float = 40.0,
    interval: float = 10.0,
    cfl: float = 0.5,
    max_dt: float = 0.05,
    seed: int = 0,
    device: str | None = None,
    dtype: torch.dtype | None = None,
) -> xr.DataArray:
    """Low-fidelity coarse vorticity of Kolmogorov flow from a cheap, biased solver.

    The unpaired, biased source data of Wan et al. (2023): the same equations as
    :func:`kolmogorov_flow` run natively on a grid 8x coarser than its solver grid
    (16^2 instead of 128^2), with cheaper numerics (no dealiasing, first-order semi-implicit
    Euler) and a 30x larger viscosity that keeps it stable, from independent initial
    conditions. Output: cell averages on the ``size x size`` grid, on the same cells as
    ``xdownscale.coarsen(kolmogorov_flow(...), 8)``.

    Parameters
    ----------
    n_snapshots, n_trajectories, spinup, interval, cfl, max_dt, seed, device, dtype
        As :func:`kolmogorov_flow` (``interval`` defaults to 10: this flow decorrelates more
        slowly, the autocorrelation at a point is about 0.35 after 5 time units and 0.1
        after 10).
    grid : int
        Solver grid (``grid x grid``).
    size : int
        Output grid (cell averages of the band-limited solution over ``size x size`` cells).
    viscosity : float
        Viscosity; below about 0.025 the un-dealiased 16^2 solver blows up.
    drag, forcing_wavenumber, forcing_amplitude : float, int, float
        As :func:`kolmogorov_flow`.

    Returns
    -------
    xarray.DataArray
        Vorticity, dims ``(time, y, x)``; coordinates as :func:`kolmogorov_flow`.

    Raises
    ------
    ValueError
        On bad sizes or parameters.
    FloatingPointError
        If the integration blows up.

    Notes
    -----
    Time step ``min(cfl dx / max|u|, nu / max|u|^2, max_dt)``: the second bound keeps forward
    Euler advection stable against the implicit viscous damping. Compared with
    ``coarsen(kolmogorov_flow(), 8)`` the energy is about 3x lower and the spectrum and
    the one-point histogram differ (tested). The seed stream differs from the
    high-fidelity solver's, so equal seeds still give independent initial conditions. Cost:
    about 0.001 s per trajectory and time unit on one CPU core.

    Examples
    --------
    >>> c = kolmogorov_flow_lowfi(3, n_trajectories=2, spinup=0.5, interval=0.2, seed=0)
    >>> c.dims, c.shape
    (('time', 'y', 'x'), (6, 8, 8))
    """
    params = dict(locals())
    _validate(**params)
    fine = size * max(8, 2 * math.ceil(grid / size))  # sub-sample each output cell 8+ times
    f = fine // size

    def output(w_hat):
        w = _resample(w_hat, grid, fine)
        return w.reshape(*w.shape[:-2], size, f, size, f).mean(dim=(-3, -1))

    data, times, info = _run(
        n_snapshots=n_snapshots,
        n_trajectories=n_trajectories,
        grid=grid,
        viscosity=viscosity,
        drag=drag,
        forcing_wavenumber=forcing_wavenumber,
        forcing_amplitude=forcing_amplitude,
        spinup=spinup,
        interval=interval,
        cfl=cfl,
        max_dt=max_dt,
        seed=_stream_seed(seed, 1),
        device=device,
        dtype=dtype,
        dealias=False,
        scheme="euler",
        output=output,
    )
    solver = (
        f"kolmogorov_flow_lowfi, pseudo-spectral {grid}x{grid} without dealiasing, "
        f"semi-implicit Euler; output: cell averages on {size}x{size}"
    )
    return _to_dataarray(data, times, _attrs(solver, params, info), "vorticity")


def kolmogorov_dataset(
    n_fine: int = 2048,
    n_coarse: int = 4096,
    *,
    seed: int = 0,
    n_trajectories: int = 32,
    device: str | None = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """The NS 8x benchmark in one call: high-fidelity fine and low-fidelity coarse vorticity.

    Parameters
    ----------
    n_fine : int
        Snapshots of :func:`kolmogorov_flow` (64^2 from a 128^2 solver, Re = 1000).
    n_coarse : int
        Snapshots of :func:`kolmogorov_flow_lowfi` (8^2 from a 16^2 solver).
    seed : int
        One seed for both (independent streams, so the two sets are unpaired).
    n_trajectories : int
        Trajectories integrated in parallel by each solver; the snapshots are split evenly
        over them (the last trajectory's surplus is dropped).
    device : str, optional
        Torch device.

    Returns
    -------
    (fine, coarse) : tuple of xarray.DataArray
        ``fine`` with dims ``(time, y, x)`` of sizes ``(n_fine, 64, 64)``; ``coarse``
        ``(n_coarse, 8, 8)``, on the cells of ``xdownscale.coarsen(fine, 8)``.

    Notes
    -----
    All other parameters are the defaults of the two generators. The cost is dominated by
    the fine solver: about 0.5 s per fine snapshot on one CPU core plus the spin-up of each
    trajectory (40 time units, about 10 s per trajectory); see ``docs/tasks/evaluate.rst`` for
    a measured run.

    Examples
    --------
    >>> import xdownscale.datasets as ds
    >>> callable(ds.kolmogorov_dataset)
    True
    """
    for nm, v in (("n_fine", n_fine), ("n_coarse", n_coarse), ("n_trajectories", n_trajectories)):
        _check(
            nm,
            v,
            bool(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1),
            "use a positive integer",
        )
    tf = min(n_trajectories, n_fine)
    tc = min(n_trajectories, n_coarse)
    fine = kolmogorov_flow(math.ceil(n_fine / tf), n_trajectories=tf, seed=seed, device=device)
    coarse = kolmogorov_flow_lowfi(
        math.ceil(n_coarse / tc), n_trajectories=tc, seed=seed, device=device
    )
    return fine.isel(time=slice(0, n_fine)), coarse.isel(time=slice(0, n_coarse))
