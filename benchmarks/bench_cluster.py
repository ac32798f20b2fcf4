"""Benchmark of the scale-out path: sample on dask.distributed, and the batch command's memory.

(a) throughput (fields per second) of ``sample`` on the same lazily chunked input with dask's
    threaded scheduler, and on a LocalCluster of 1 and of 2 worker processes (one thread
    each), in the same run, with the embedded default model; the results are checked to be
    identical;
(b) peak memory (``VmHWM`` of a fresh process) of ``xdownscale downscale`` on inputs of N and
    10 N time steps, zarr output written chunk by chunk: the target is at most 1.3x.

Input: 8 km block means of MeteoSwiss radar frames (``../shared/data`` through the registry:
``XDOWNSCALE_DATA_DIR``), tiled in time for the long input. Writes
``docs/benchmarks/cluster_results.inc``.

    python benchmarks/bench_cluster.py            # a few minutes on 2 cores
    python benchmarks/bench_cluster.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe

import xdownscale as xd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("XDOWNSCALE_DATA_DIR", str(ROOT.parent / "shared" / "data"))


def coarse_input(n_time: int, size: int) -> xr.Dataset:
    """``n_time`` coarse frames (the 1 km MeteoSwiss field, 8 x 8 block means), tiled in time."""
    ds = xd.datasets.open_data("radar/mch_radar_precip_1km.nc")
    fine = ds.precip.isel(time=slice(100, 120), y=slice(260, 260 + size), x=slice(380, 380 + size))
    fine = fine.astype("float32").load().assign_attrs(units="mm h-1")
    coarse = xd.coarsen(fine, 8)
    reps = -(-n_time // coarse.sizes["time"])
    tiled = xr.concat([coarse] * reps, dim="time").isel(time=slice(0, n_time))
    t0 = np.datetime64("2020-01-01T00:00")
    tiled = tiled.assign_coords(time=t0 + np.arange(n_time) * np.timedelta64(5, "m"))
    return tiled.to_dataset(name="precip")


def throughput(n_fields: int, size: int, steps: int, repeats: int) -> dict:
    import dask
    import distributed

    coarse = coarse_input(n_fields, size).precip.chunk(time=2)
    lazy = coarse.downscale.sample(steps=steps, scale=1.0, seed=0)

    def timed(compute) -> tuple[float, np.ndarray]:
        best, out = np.inf, None
        for _ in range(repeats):
            t = time.perf_counter()
            out = compute()
            best = min(best, time.perf_counter() - t)
        return best, out

    res = {}
    with dask.config.set(scheduler="threads"):
        res["threads"], ref = timed(lambda: lazy.compute().values)
    for n in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            )
        with distributed.Client(cluster) as client:
            client.compute(lazy.isel(time=slice(0, 2))).result()  # workers load the model once
            res[f"cluster{n}"], out = timed(lambda: client.compute(lazy).result().values)
            res[f"identical{n}"] = bool(np.array_equal(out, ref))
        cluster.close()
    return {k: (n_fields / v if not k.startswith("identical") else v) for k, v in res.items()}


CHILD = """
import sys
from xdownscale import cli
code = cli.main(sys.argv[1:])
from pathlib import Path
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        print("VMHWM", line.split()[1])
sys.exit(code)
"""


def batch_memory(n_time: int, size: int, steps: int, workdir: Path) -> dict:
    out = {}
    for label, n in (("short", n_time), ("long", 10 * n_time)):
        inp = workdir / f"in_{label}.nc"
        coarse_input(n, size).to_netcdf(inp)
        store = workdir / f"out_{label}.zarr"
        cmd = [sys.executable, "-c", CHILD, "downscale", str(inp), str(store), "--var", "precip",
               "--steps", str(steps), "--chunks", "time=8", "--overwrite", "--no-progress"]
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t
        peak = int(next(ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("VMHWM")))
        out[label] = {"time_steps": n, "peak_mib": peak / 1024, "seconds": seconds}
    out["ratio"] = out["long"]["peak_mib"] / out["short"]["peak_mib"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "cluster_results.inc"))
    args = ap.parse_args()
    n_fields, size, steps, repeats, n_time = (8, 128, 2, 1, 8) if args.quick else (32, 256, 4, 2, 24)
    machine = describe(["torch", "xarray", "dask", "distributed", "numpy"])
    load = os.getloadavg()[0]
    print(f"machine: {machine}; load {load:.1f}", flush=True)
    tp = throughput(n_fields, size, steps, repeats)
    print(json.dumps(tp, indent=1), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        mem = batch_memory(n_time, 128 if args.quick else 128, steps, Path(tmp))
    print(json.dumps(mem, indent=1), flush=True)
    fine = 8 * (size // 8)
    lines = [
        f"Machine: {machine}; load average {load:.1f} at the start.",
        "",
        f"Command: ``python benchmarks/bench_cluster.py{' --quick' if args.quick else ''}``",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - measurement",
        "     - result",
        "     - target",
        f"   * - (a) ``sample`` of {n_fields} fields of {fine} x {fine} cells (8x, {steps} Heun "
        "steps, chunks of 2), fields per second",
        f"     - threads {tp['threads']:.2f}; 1 worker process {tp['cluster1']:.2f} "
        f"({tp['cluster1'] / tp['threads']:.2f}x); 2 worker processes {tp['cluster2']:.2f} "
        f"({tp['cluster2'] / tp['threads']:.2f}x); identical to the threaded result: "
        f"{tp['identical1'] and tp['identical2']}",
        "     - identical results",
        f"   * - (b) peak memory of ``xdownscale downscale`` (zarr, chunks of 8 time steps), "
        f"{mem['short']['time_steps']} vs {mem['long']['time_steps']} time steps of 128 x 128 km",
        f"     - {mem['short']['peak_mib']:.0f} MiB vs {mem['long']['peak_mib']:.0f} MiB: "
        f"**{mem['ratio']:.2f}x** ({mem['short']['seconds']:.0f} s vs {mem['long']['seconds']:.0f} s)",
        "     - <= 1.3x",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
