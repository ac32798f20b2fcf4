"""The GPU path in one go: verify it, then measure fields per second (issue #17).

    python benchmarks/bench_gpu.py              # on a machine with a CUDA GPU (a few minutes)
    python benchmarks/bench_gpu.py --dry-run    # the same code on the CPU, tiny sizes (CI-safe)

Without a CUDA device it says so and exits 0 (``--dry-run`` still exercises every step on the
CPU with tiny fields, so the script is known to work before GPU time is spent on it).

1. Checks: ``device="auto"`` resolves to the GPU; ``sample`` with the embedded ``radar-8x-cm``
   and ``radar-8x`` gives the CPU's result within float32 tolerance on the GPU (max abs diff
   <= 1e-3 mm/h, relative to fields of a few mm/h); ``precision="bfloat16"`` runs under autocast
   and stays within 10 % of the float32 fields (mean abs difference relative to the mean).
2. Speed, fields of 240 x 384 (Hess et al. 2024): a Hess-sized UNet (128/128/256/256 channels,
   bottleneck attention, random weights: speed does not depend on them) with one-step
   consistency sampling, float32 and bfloat16, over batch sizes 32..512 (the best is reported,
   and the sweep is the batch-size rule for GPUs); the shipped ``radar-8x-cm`` (one step) and
   ``radar-8x`` (Heun, default 18 steps; 2 in a dry run). Target: >= 500 fields/s on an H100-class GPU.

Writes ``docs/benchmarks/gpu_results.json`` and ``docs/benchmarks/gpu_results.inc`` (GPU runs
only).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import xdownscale
from xdownscale.nn import ConsistencyModel, DownscalingModel, UNet

ROOT = Path(__file__).resolve().parents[1]
CARD = {"name": "hess-size", "units": "mm/h", "transform": "log", "scale_min": 0.0, "scale_max": 4.0}


def _coarse(n: int, ny: int, nx: int, factor: int = 8, seed: int = 0) -> xr.DataArray:
    """Positive 'rain' on an 8 km grid (the shipped models' input)."""
    rng = np.random.default_rng(seed)
    data = rng.gamma(0.8, 1.5, (n, ny // factor, nx // factor)).astype(np.float32)
    y = np.arange(ny // factor) * 8.0
    x = np.arange(nx // factor) * 8.0
    return xr.DataArray(
        data,
        dims=("time", "y", "x"),
        coords={"y": ("y", y, {"units": "km"}), "x": ("x", x, {"units": "km"})},
        attrs={"units": "mm h-1"},
    )


def _timed(fn, device: str, repeats: int = 3) -> float:
    fn()  # warm-up (cuDNN autotuning, caches)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def checks(device: str, size: tuple[int, int]) -> dict:
    from xdownscale.nn.device import resolve_device

    res: dict = {"auto_device": str(resolve_device("auto"))}
    coarse = _coarse(4, *size)
    for name, kw in (("radar-8x-cm", {}), ("radar-8x", {"steps": 4})):
        cpu = coarse.downscale.sample(name, device="cpu", seed=1, **kw).values
        dev = coarse.downscale.sample(name, device=device, seed=1, **kw).values
        bf = coarse.downscale.sample(name, device=device, seed=1, precision="bfloat16", **kw).values
        res[name] = {
            "max_abs_diff_vs_cpu": float(np.nanmax(np.abs(dev - cpu))),
            "bf16_mean_rel_diff": float(np.nanmean(np.abs(bf - dev)) / max(np.nanmean(np.abs(dev)), 1e-9)),
        }
        res[name]["ok"] = (
            res[name]["max_abs_diff_vs_cpu"] <= 1e-3 and res[name]["bf16_mean_rel_diff"] <= 0.10
        )
    return res


def speed(device: str, size: tuple[int, int], batches: list[int], n_fields: int, hess_channels,
          heun_steps: int | None = None) -> dict:
    torch.manual_seed(0)
    hess = DownscalingModel(
        ConsistencyModel(UNet(channels=hess_channels, attention=True, groups=min(32, hess_channels[0]))),
        CARD,
    )
    fine = xr.DataArray(
        np.random.default_rng(0).gamma(0.8, 1.5, (n_fields, *size)).astype(np.float32),
        dims=("time", "y", "x"),
        attrs={"units": "mm/h"},
    )
    out: dict = {"hess": {}, "fields": n_fields, "size": list(size)}
    for precision in ("float32", "bfloat16"):
        rates = {}
        for b in batches:
            def run(b=b, precision=precision):
                fine.downscale.sample(hess, factor=1, scale=0.5, batch_size=b, device=device,
                                      precision=precision)
            try:
                rates[b] = n_fields / _timed(run, device)
            except torch.cuda.OutOfMemoryError:
                rates[b] = None
                torch.cuda.empty_cache()
                break
            print(f"  Hess UNet {precision} batch {b}: {rates[b]:.1f} fields/s", flush=True)
        out["hess"][precision] = rates
    coarse = _coarse(n_fields, *size)
    for name, kw in (("radar-8x-cm", {}), ("radar-8x", {"steps": heun_steps})):
        for precision in ("float32", "bfloat16"):
            def run(name=name, precision=precision, kw=kw):
                coarse.downscale.sample(name, device=device, batch_size=max(batches), precision=precision, **kw)
            rate = n_fields / _timed(run, device, repeats=2)
            out.setdefault(name, {})[precision] = rate
            print(f"  {name} {precision}: {rate:.1f} fields/s", flush=True)
    return out


def write_docs(res: dict, path: Path) -> None:
    best = {p: max((v for v in r.values() if v), default=0.0) for p, r in res["speed"]["hess"].items()}
    lines = [
        ".. Generated by benchmarks/bench_gpu.py; do not edit by hand.",
        "",
        f"GPU: {res['gpu']}; torch {torch.__version__}, CUDA {torch.version.cuda}, Python "
        f"{platform.python_version()}, xdownscale {xdownscale.__version__}. Command: "
        "``python benchmarks/bench_gpu.py``.",
        "",
        f"- Checks: ``device='auto'`` -> {res['checks']['auto_device']}; "
        + "; ".join(
            f"{n}: max |GPU - CPU| {c['max_abs_diff_vs_cpu']:.2g} mm/h, bfloat16 mean relative "
            f"difference {c['bf16_mean_rel_diff']:.2%} ({'ok' if c['ok'] else 'FAILED'})"
            for n, c in res["checks"].items() if isinstance(c, dict)
        ),
        f"- Hess-sized UNet, one step, {res['speed']['size'][0]} x {res['speed']['size'][1]}: "
        f"best {best.get('float32', 0):.0f} fields/s in float32, {best.get('bfloat16', 0):.0f} in "
        f"bfloat16 (target 500: {'met' if max(best.values()) >= 500 else 'missed'}); by batch size: "
        + "; ".join(f"{p} " + ", ".join(f"{b}: {v:.0f}" if v else f"{b}: out of memory" for b, v in r.items())
                    for p, r in res["speed"]["hess"].items()),
        "- Shipped models at the same size: "
        + "; ".join(f"{n} float32 {res['speed'][n]['float32']:.0f}, bfloat16 {res['speed'][n]['bfloat16']:.0f} fields/s"
                    for n in ("radar-8x-cm", "radar-8x")),
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="run every step on the CPU with tiny fields")
    ap.add_argument("--fields", type=int, default=1024)
    args = ap.parse_args(argv)
    if args.dry_run:
        device, size, batches, n, channels = "cpu", (64, 64), [2, 4], 4, (8, 8, 16, 16)
        print("dry run on the CPU: tiny fields, no numbers worth keeping")
    elif not torch.cuda.is_available():
        print("no CUDA device (torch.cuda.is_available() is False): GPU checks and speed skipped; "
              "`--dry-run` runs the same steps on the CPU")
        return 0
    else:
        device, size, batches, n, channels = "cuda", (240, 384), [32, 64, 128, 256, 512], args.fields, (128, 128, 256, 256)
    t0 = time.perf_counter()
    res = {"gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run)"}
    print("1. checks", flush=True)
    res["checks"] = checks(device, (64, 64) if args.dry_run else (256, 256))
    print(json.dumps(res["checks"], indent=1), flush=True)
    print("2. speed", flush=True)
    res["speed"] = speed(device, size, batches, n, channels, heun_steps=2 if args.dry_run else None)
    res["seconds"] = time.perf_counter() - t0
    if not args.dry_run:
        (ROOT / "docs" / "benchmarks" / "gpu_results.json").write_text(json.dumps(res, indent=1))
        write_docs(res, ROOT / "docs" / "benchmarks" / "gpu_results.inc")
    ok = all(c["ok"] for c in res["checks"].values() if isinstance(c, dict))
    print(f"done in {res['seconds']:.0f} s; checks {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
