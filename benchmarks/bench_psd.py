"""Benchmark: xdownscale.psd against xrft.isotropic_power_spectrum and a loop of pysteps' rapsd.

Same fields, same run, medians of repeats; results are ratios (the machine is shared). Checks
that the values are identical up to the documented factors:
- pysteps: ``rapsd(field, fft_method=np.fft)`` equals ``psd`` exactly (square grids with the
  default rings; ``rings="index"`` on non-square grids);
- xrft: ``isotropic_power_spectrum`` equals ``psd(bins=<xrft's edges>) * k * dx * dy``.

Run:  python benchmarks/bench_psd.py            (writes docs/benchmarks/psd_results.inc)
      python benchmarks/bench_psd.py --quick    (small smoke run, writes nothing)
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from _machine import describe

import xdownscale as xd

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def fields(n, ny, nx, seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.standard_normal((n, ny, nx)),
        dims=("time", "y", "x"),
        coords={"y": np.arange(ny, dtype=float), "x": np.arange(nx, dtype=float)},
    )


def xrft_edges(ny, nx):
    fr = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :])
    edges = np.linspace(fr.min(), fr.max(), min(ny, nx) // 4 + 1)
    edges[0] -= 0.001 * (fr.max() - fr.min())  # pandas.cut's widening of the first bin
    return edges


def run(n, ny, nx, repeat):
    import xrft
    from pysteps.utils.spectral import rapsd

    da = fields(n, ny, nx)
    a = da.values
    rings = "wavenumber" if ny == nx else "index"

    t_ours, ours = timed(lambda: xd.psd(da, rings=rings).values, repeat)

    def pysteps_loop():
        return np.mean([rapsd(f, fft_method=np.fft) for f in a], axis=0)

    t_rapsd, ref = timed(pysteps_loop, repeat)

    def xrft_call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xrft.isotropic_power_spectrum(da, dim=["y", "x"], truncate=True).mean("time")

    t_xrft, iso = timed(xrft_call, repeat)
    # values: rapsd identical; xrft identical up to k * dx * dy with xrft's own bins
    err_rapsd = float(np.max(np.abs(ours - ref) / np.abs(ref).max()))
    binned = xd.psd(da, bins=xrft_edges(ny, nx))
    m = iso.sizes["freq_r"]
    expected = binned.values[:m] * binned.wavenumber.values[:m]  # dx = dy = 1
    err_xrft = float(np.max(np.abs(iso.values - expected) / np.abs(iso.values).max()))
    return {
        "case": f"{n} x {ny} x {nx}",
        "ours_s": t_ours,
        "xrft_s": t_xrft,
        "rapsd_s": t_rapsd,
        "vs_xrft": t_xrft / t_ours,
        "vs_rapsd": t_rapsd / t_ours,
        "err_rapsd": err_rapsd,
        "err_xrft": err_xrft,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run; writes nothing")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = [(50, 64, 64), (5, 60, 96)] if args.quick else [(1000, 128, 128), (100, 240, 384)]
    rows = [run(*c, repeat=1 if args.quick else args.repeat) for c in cases]
    header = "| fields | psd (s) | xrft (s) | rapsd loop (s) | speed-up vs xrft | speed-up vs rapsd | max rel. diff rapsd | max rel. diff xrft |"
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['ours_s']:.3f} | {r['xrft_s']:.3f} | {r['rapsd_s']:.3f} | "
            f"{r['vs_xrft']:.1f}x | {r['vs_rapsd']:.1f}x | {r['err_rapsd']:.1e} | {r['err_xrft']:.1e} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.quick:
        return
    machine = describe(["numpy", "scipy", "xarray", "xrft", "pysteps"])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rst = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - fields",
        "     - psd (s)",
        "     - xrft (s)",
        "     - rapsd loop (s)",
        "     - speed-up vs xrft",
        "     - speed-up vs rapsd",
        "     - max rel. diff vs rapsd",
        "     - max rel. diff vs xrft",
    ]
    for r in rows:
        rst += [
            f"   * - {r['case']}",
            f"     - {r['ours_s']:.3f}",
            f"     - {r['xrft_s']:.3f}",
            f"     - {r['rapsd_s']:.3f}",
            f"     - {r['vs_xrft']:.1f}x",
            f"     - {r['vs_rapsd']:.1f}x",
            f"     - {r['err_rapsd']:.1e}",
            f"     - {r['err_xrft']:.1e}",
        ]
    rst += ["", f"Measured {stamp} on: {machine}.", ""]
    out = ROOT / "docs" / "benchmarks" / "psd_results.inc"
    out.write_text("\n".join(rst))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
