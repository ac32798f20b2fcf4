"""Benchmark of ``sample`` / ``ensemble`` against a bare torch loop (issue 5).

(a) throughput of ``sample`` on a lazily chunked DataArray vs a bare torch loop over the same
    tensors (same model, same batches) — target >= 0.9 of the bare loop;
(b) one-step consistency vs a 500-step Euler–Maruyama SDE at equal network size, per sample —
    target >= 300x faster;
(c) peak memory of ``ensemble(1000, reduce=["mean", "std"])`` vs ``ensemble(10, ...)``, each in
    a fresh subprocess (peak RSS from ``VmHWM`` in /proc/self/status) — target <= 2x;
(d) on a CUDA GPU only: fields per second for a 240 x 384 field with a Hess-sized UNet
    (128/128/256/256, attention) — target >= 500 fields/s on an H100-class GPU (the whole GPU
    check is ``benchmarks/bench_gpu.py``);
(e) efficiency of the default model's forward pass (``radar-8x`` at 256 x 256, batch 8, FLOPs
    counted with ``torch.utils.flop_counter``) against a 2048 x 2048 fp32 matmul in the same
    process, interleaved rounds — target >= 0.40 of the matmul rate (issue #17);
(f) ``sample`` with the default model and steps on 8 held-out radar fields of 256 x 256
    (MeteoSwiss 2017-01-31, coarsened 8x), eager against chunked two fields per chunk, with
    the machine's thread count — target: eager <= 1.1 x chunked, and the same bits.

Networks are randomly initialised: speed and memory do not depend on the weights. Writes
``docs/benchmarks/sample.rst``.

    python benchmarks/bench_sample.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_sample.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from _machine import cpu_model, peak_rss_kb, proc_status_kb

import xdownscale
from xdownscale.nn import ConsistencyModel, DownscalingModel, EDMDenoiser, UNet
from xdownscale.nn.pipeline import sample_seed

ROOT = Path(__file__).resolve().parents[1]
CARD = {"name": "bench", "units": "mm/h", "transform": "log", "scale_min": 0.0, "scale_max": 4.0}
SIGMA = 0.5


def _net(channels, attention=True, groups=8) -> UNet:
    torch.manual_seed(0)
    return UNet(channels=channels, attention=attention, groups=groups)


def _fields(n: int, ny: int, nx: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(0.8, 1.5, (n, ny, nx)).astype(np.float32)


def _da(data: np.ndarray) -> xr.DataArray:
    return xr.DataArray(data, dims=("time", "y", "x"), attrs={"units": "mm/h"})


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bare_loop(model, data: np.ndarray, batch: int, device, gens_for=None) -> np.ndarray:
    """What a user would write by hand: transform, noise, one evaluation, inverse; per batch."""
    card, f = model.card, model.denoiser.to(device).eval()
    g = torch.Generator().manual_seed(0)
    out = np.empty_like(data)
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = torch.from_numpy(data[i : i + batch, None]).to(device)
            z = card.forward_transform(x)
            if gens_for is None:
                noise = torch.randn(z.shape, generator=g)
            else:  # the same per-sample noise as sample(), for the agreement check
                noise = torch.stack(
                    [torch.randn(z.shape[1:], generator=gens_for(i + j)) for j in range(len(z))]
                )
            z = z + SIGMA * noise.to(device)
            y = f(z, torch.full((len(z),), SIGMA, device=device))
            out[i : i + batch] = card.inverse_transform(y)[:, 0].cpu().numpy()
    return out


def bench_throughput(n_fields, size, batch, chunk, repeats, device="cpu"):
    model = DownscalingModel(ConsistencyModel(_net((8, 16, 32))), CARD)
    data = _fields(n_fields, size, size)
    da = _da(data).chunk(time=chunk)

    def run_sample():
        return da.downscale.sample(
            model, factor=1, scale=SIGMA, batch_size=batch, device=device
        ).compute()

    out = run_sample()  # warm-up, and the agreement check below
    ref = bare_loop(
        model, data[:batch], batch, device,
        gens_for=lambda i: torch.Generator().manual_seed(sample_seed(0, 0, (i,))),
    )
    agree = float(np.abs(out.values[:batch] - ref).max())
    bare_loop(model, data, batch, device)  # warm-up
    times: dict[str, list[float]] = {"sample": [], "bare": []}
    for _ in range(repeats):  # interleaved: the machine's load drifts
        for k, fn in (("sample", run_sample), ("bare", lambda: bare_loop(model, data, batch, device))):
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    t_sample, t_bare = statistics.median(times["sample"]), statistics.median(times["bare"])
    n_params = sum(p.numel() for p in model.denoiser.parameters())
    return {
        "fields": n_fields, "size": size, "batch": batch, "chunk": chunk, "params": n_params,
        "sample_fps": n_fields / t_sample, "bare_fps": n_fields / t_bare,
        "ratio": t_bare / t_sample, "max_abs_diff": agree,
    }


def bench_steps(n_cm, n_sde, size, batch, repeats):
    net = _net((8, 16, 32))
    cm = DownscalingModel(ConsistencyModel(net), CARD)
    edm = DownscalingModel(EDMDenoiser(net), CARD)  # the same network (equal size)
    da_cm = _da(_fields(n_cm, size, size))
    da_sde = _da(_fields(n_sde, size, size))
    kw = {"factor": 1, "scale": SIGMA, "batch_size": batch, "device": "cpu"}
    da_cm.downscale.sample(cm, **kw)  # warm-up
    t_cm = _median_time(lambda: da_cm.downscale.sample(cm, **kw), repeats) / n_cm
    t_sde = _median_time(
        lambda: da_sde.downscale.sample(edm, sampler="sde", steps=500, **kw), 1
    ) / n_sde
    return {"cm_s": t_cm, "sde_s": t_sde, "speedup": t_sde / t_cm, "n_cm": n_cm, "n_sde": n_sde}


def _current_rss_kb() -> int:
    """Resident set size now (VmRSS), in kB; the peak so far would include import transients."""
    now = proc_status_kb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(n: int, ny: int, nx: int, batch: int) -> None:
    """Run in a fresh process: one ensemble with streaming mean/std; print peak RSS (kB)."""
    model = DownscalingModel(ConsistencyModel(_net((4, 8), attention=False, groups=4)), CARD)
    coarse = _da(_fields(1, ny // 4, nx // 4)).chunk(time=1)
    base = _current_rss_kb()
    t = time.perf_counter()
    ds = coarse.downscale.ensemble(
        n, model, factor=4, reduce=["mean", "std"], scale=SIGMA, batch_size=batch, device="cpu"
    ).compute()
    dt = time.perf_counter() - t
    peak = peak_rss_kb()
    print(json.dumps({"n": n, "base_kb": base, "peak_kb": peak, "seconds": dt,
                      "mean": float(ds["mean"].mean()), "std": float(ds["std"].mean())}))


def bench_memory(ny, nx, batch, members=(10, 1000)):
    res = {}
    for n in members:
        cmd = [sys.executable, __file__, "--memory-child", str(n), str(ny), str(nx), str(batch)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        res[n] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def bench_gpu(n_fields=512, batch=64):
    if not torch.cuda.is_available():
        print("(d) GPU part skipped: no CUDA device (torch.cuda.is_available() is False)")
        return None
    model = DownscalingModel(
        ConsistencyModel(_net((128, 128, 256, 256), attention=True, groups=32)), CARD
    )
    data = _fields(n_fields, 240, 384)
    da = _da(data).chunk(time=batch * 2)
    out = {}
    for precision in ("float32", "bfloat16"):
        def run(precision=precision):
            da.downscale.sample(model, factor=1, scale=SIGMA, batch_size=batch, device="cuda",
                                precision=precision).compute()
            torch.cuda.synchronize()
        run()
        out[precision] = n_fields / _median_time(run, 3)
    bare_loop(model, data, batch, torch.device("cuda"))
    out["bare_float32"] = n_fields / _median_time(
        lambda: bare_loop(model, data, batch, torch.device("cuda")), 3)
    out["gpu"] = torch.cuda.get_device_name(0)
    return out


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n**3 / _median_time(lambda: a @ b, repeats) / 1e9


def bench_efficiency(rounds: int, threads_list=(1, 2), batch: int = 8, size: int = 256) -> dict:
    """Forward-pass GFLOP/s of the default model against the matmul rate, same process."""
    from torch.utils.flop_counter import FlopCounterMode

    from xdownscale.models import load
    from xdownscale.nn.networks import tune_malloc

    malloc = tune_malloc()  # what the sampling pipeline does on the CPU
    den = load(None).denoiser.eval()
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((batch,), 0.5)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # counted in this thread (pool threads are not seen by the counter)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        den(x, sigma)
    flops = fc.get_total_flops()
    out: dict = {"gflop_per_field": flops / batch / 1e9, "batch": batch, "size": size,
                 "malloc_tuned": malloc}
    for threads in threads_list:
        torch.set_num_threads(threads)
        with torch.no_grad():
            den(x, sigma)  # warm-up at this thread count
            rows = []
            for _ in range(rounds):
                mm0 = matmul_gflops()
                t = time.perf_counter()
                den(x, sigma)
                fw = flops / (time.perf_counter() - t) / 1e9
                mm1 = matmul_gflops()
                rows.append((fw, 0.5 * (mm0 + mm1)))
        ratios = [fw / mm for fw, mm in rows]
        out[threads] = {
            "ratio": statistics.median(ratios),
            "forward_gflops": statistics.median(r[0] for r in rows),
            "matmul_gflops": statistics.median(r[1] for r in rows),
        }
        print(f"(e) {threads} thread(s): {out[threads]}", flush=True)
    torch.set_num_threads(saved)
    return out


def _held_out_coarse():
    """8 frames of a fully covered 256 km window of MeteoSwiss 2017-01-31, coarsened 8x."""
    try:
        import radar_data
    except ImportError:  # pragma: no cover
        return None
    try:
        held = radar_data.held_out()
    except SystemExit as err:
        print(f"(f) skipped: {err}")
        return None
    valid = np.isfinite(held).all("time").values
    idx = np.linspace(0, held.sizes["time"] - 1, 8).round().astype(int)
    for i in range(0, valid.shape[0] - 255, 32):
        for j in range(0, valid.shape[1] - 255, 32):
            if valid[i : i + 256, j : j + 256].all():
                t = held.isel(time=idx, y=slice(i, i + 256), x=slice(j, j + 256)).load()
                t = t.clip(min=0).astype(np.float32).assign_attrs(units="mm h-1")
                t = t.drop_vars([c for c in t.coords if c not in ("time", "y", "x")])
                return xdownscale.coarsen(t, 8)
    return None


def bench_eager(repeats: int, threads: int) -> dict | None:
    coarse = _held_out_coarse()
    if coarse is None:
        return None
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    runs = {
        "eager": lambda: coarse.downscale.sample(seed=0),
        "chunked": lambda: coarse.chunk(time=2).downscale.sample(seed=0).compute(),
    }
    first = {k: f().values for k, f in runs.items()}  # warm-up, and the bit-identity check
    times: dict[str, list[float]] = {"eager": [], "chunked": []}
    for _ in range(repeats):  # interleaved: the machine's load drifts
        for k in ("chunked", "eager"):
            t = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t)
    torch.set_num_threads(saved)
    e, c = statistics.median(times["eager"]), statistics.median(times["chunked"])
    out = {"eager_s": e, "chunked_s": c, "ratio": e / c, "threads": threads,
           "identical": bool(np.array_equal(first["eager"], first["chunked"], equal_nan=True))}
    print("(f)", out, flush=True)
    return out


def eager_child(repeats: int) -> dict | None:
    """(f) in a fresh process: a torch thread count set earlier in this one would apply to the
    threads dask creates."""
    out = subprocess.run([sys.executable, __file__, "--eager-child", str(repeats)],
                         capture_output=True, text=True, check=True).stdout
    line = [x for x in out.splitlines() if x.startswith("EAGER ")][-1]
    res = json.loads(line[len("EAGER "):])
    print("(f)", res, flush=True)
    return res


def machine() -> str:
    cpu = cpu_model()
    import dask

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores (shared; load average {load:.1f} at start), "
        f"torch {torch.__version__} with {torch.get_num_threads()} intra-op thread(s), "
        f"xarray {xr.__version__}, dask {dask.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}, xdownscale {xdownscale.__version__}"
    )


def write_rst(path: Path, a, b, c, d, e, f, args, info: str, cmd: str) -> None:
    mem = {n: r for n, r in c.items()}
    n_lo, n_hi = sorted(mem)
    ratio_mem = mem[n_hi]["peak_kb"] / mem[n_lo]["peak_kb"]
    inc_lo = mem[n_lo]["peak_kb"] - mem[n_lo]["base_kb"]
    inc_hi = mem[n_hi]["peak_kb"] - mem[n_hi]["base_kb"]
    ok = lambda cond: "met" if cond else "**missed**"  # noqa: E731
    gpu_rows = (
        f"   * - (d) {d['gpu']}: fields/s at 240 x 384, UNet 128/128/256/256 + attention\n"
        f"     - float32 {d['float32']:.1f}, bfloat16 {d['bfloat16']:.1f} "
        f"(bare loop float32 {d['bare_float32']:.1f})\n"
        f"     - >= 500 fields/s\n"
        f"     - {ok(max(d['float32'], d['bfloat16']) >= 500)}\n"
        if d else
        "   * - (d) GPU fields/s at 240 x 384, Hess-sized UNet\n"
        "     - not run: no CUDA device on this machine\n"
        "     - >= 500 fields/s on an H100-class GPU\n"
        "     - not measured\n"
    )
    eff_rows = "".join(
        f"   * - (e) ``radar-8x`` forward pass at {e['size']} x {e['size']}, batch {e['batch']}, "
        f"{t} torch thread(s), vs a 2048 x 2048 fp32 matmul in the same process\n"
        f"     - {e[t]['forward_gflops']:.1f} vs {e[t]['matmul_gflops']:.1f} GFLOP/s: "
        f"**{e[t]['ratio']:.2f}**\n"
        f"     - >= 0.40\n"
        f"     - {ok(e[t]['ratio'] >= 0.40)}\n"
        for t in (1, 2) if t in e
    )
    eager_rows = (
        f"   * - (f) ``sample`` (default model and steps) on 8 held-out radar fields of 256 x 256, "
        f"eager vs chunked two per chunk, {f['threads']} threads\n"
        f"     - {f['eager_s']:.0f} s vs {f['chunked_s']:.0f} s: **{f['ratio']:.2f}**; "
        f"{'identical bits' if f['identical'] else '**results differ**'}\n"
        f"     - <= 1.1\n"
        f"     - {ok(f['ratio'] <= 1.1 and f['identical'])}\n"
        if f else
        "   * - (f) eager vs chunked on held-out radar fields\n"
        "     - not run: ../shared/data/radar absent\n"
        "     - <= 1.1\n"
        "     - not measured\n"
    )
    text = f"""Sampling speed and memory
=========================

``benchmarks/bench_sample.py`` measures :func:`xdownscale.sample` and
:func:`xdownscale.ensemble` against a bare torch loop in the same run, with the same model and
batches. All networks are randomly initialised :class:`xdownscale.nn.UNet`\\ s: speed and memory do
not depend on the weights.

Machine: {info}.

Command: ``{cmd}``

.. list-table::
   :header-rows: 1
   :widths: 40 30 15 15

   * - measurement
     - result
     - target
     - status
   * - (a) ``sample`` on a lazily chunked DataArray of {a['fields']:,} fields
       ({a['size']} x {a['size']}, chunks of {a['chunk']}, batch {a['batch']}) vs a bare torch loop
     - {a['sample_fps']:.0f} vs {a['bare_fps']:.0f} fields/s: ratio **{a['ratio']:.2f}**
     - >= 0.9
     - {ok(a['ratio'] >= 0.9)}
   * - (b) one-step consistency vs 500-step Euler–Maruyama SDE, same network, per sample
     - {b['cm_s'] * 1e3:.2f} ms vs {b['sde_s']:.2f} s: **{b['speedup']:.0f}x**
     - >= 300x
     - {ok(b['speedup'] >= 300)}
   * - (c) peak RSS of ``ensemble({n_hi}, reduce=["mean", "std"])`` vs ``ensemble({n_lo}, ...)``,
       {args.mem_ny} x {args.mem_nx} field, fresh process each
     - {mem[n_hi]['peak_kb'] / 1024:.0f} MiB vs {mem[n_lo]['peak_kb'] / 1024:.0f} MiB: **{ratio_mem:.2f}x**
       (above the post-import baseline: {inc_hi / 1024:.0f} vs {inc_lo / 1024:.0f} MiB)
     - <= 2x
     - {ok(ratio_mem <= 2)}
{gpu_rows}{eff_rows}{eager_rows}
Details
-------
- (a) Network: UNet 8/16/32 with bottleneck attention ({a['params']:,} parameters), one-step
  consistency sampling at sigma* = {SIGMA}, input already on the model grid (``factor=1``) so
  both sides do the same work: transform, noise, one network evaluation, inverse transform.
  The bare loop draws the noise for a whole batch from one generator; ``sample`` draws each
  field's noise from its own generator seeded by (seed, member, position) — that is what makes
  it chunk-invariant, and its cost is included. Medians of {args.repeats} runs each. Agreement:
  with the same per-sample noise, the first batch of both differs by at most
  {a['max_abs_diff']:.2g} (mm/h).
- (b) The same UNet 8/16/32 wrapped as a consistency model (1 evaluation) and as an EDM
  denoiser (500 evaluations, ``sampler="sde"``), both through ``sample`` from sigma* =
  {SIGMA}; per-sample times from {b['n_cm']} and {b['n_sde']} fields of {args.size} x {args.size}.
  Hess et al. (2024) report 340x on a V100.
- (c) Network: UNet 4/8 without attention, one coarse field upsampled 4x to
  {args.mem_ny} x {args.mem_nx}, batch {args.mem_batch}. Peak RSS is
  ``VmHWM`` (/proc/self/status) of a fresh subprocess per configuration (not ``ru_maxrss``,
  which Linux carries over from the parent through fork and exec); the
  post-import baseline is the resident set (``VmRSS``) just before the computation, with
  torch, xarray and the model loaded.
  Wall time: {mem[n_hi]['seconds']:.0f} s for {n_hi} members, {mem[n_lo]['seconds']:.1f} s for {n_lo}.
- (e) FLOPs of one call counted with ``torch.utils.flop_counter.FlopCounterMode``
  ({e['gflop_per_field']:.2f} GFLOP per field and evaluation); each round times the matmul,
  the forward pass and the matmul again, and the ratio uses the mean of the two matmul rates;
  medians of {args.rounds} rounds. glibc malloc thresholds tuned as the sampling pipeline
  does (``xdownscale.nn.networks.tune_malloc``: {e['malloc_tuned']}).
- (f) The same call ``coarse.downscale.sample(seed=0)`` on the numpy-backed field and on
  ``coarse.chunk(time=2)``; medians of {args.eager_repeats} interleaved runs each, in a fresh
  process with torch's default thread count (a count set earlier in a process applies to the
  threads dask creates later, so (a)-(e)'s setting would carry over).
- The box is shared with other jobs and noisy; torch runs with {torch.get_num_threads()}
  intra-op thread(s) (with 2 threads, OpenMP spin-waiting on a loaded 2-core machine slowed
  small operations by orders of magnitude).
"""
    path.write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "sample.rst")
    ap.add_argument("--memory-child", nargs=4, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--eager-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.eager_child:  # a fresh process with torch's default threads, as a user has it
        print("EAGER " + json.dumps(bench_eager(args.eager_child, threads=torch.get_num_threads())))
        return
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    q = args.quick
    args.fields, args.size, args.batch, args.chunk = (200, 32, 50, 100) if q else (2000, 32, 50, 250)
    args.repeats = 1 if q else 3
    args.mem_ny, args.mem_nx, args.mem_batch = (60, 96, 10) if q else (240, 384, 10)
    cmd = "python benchmarks/bench_sample.py" + (" --quick" if q else "")
    info = machine()
    print(info)
    a = bench_throughput(args.fields, args.size, args.batch, args.chunk, args.repeats)
    print("(a)", a)
    b = bench_steps(64 if q else 256, 2 if q else 8, args.size, args.batch, args.repeats)
    print("(b)", b)
    c = bench_memory(args.mem_ny, args.mem_nx, args.mem_batch, (10, 100 if q else 1000))
    print("(c)", c)
    d = bench_gpu()
    print("(d)", d)
    args.rounds = 2 if q else 5
    e = bench_efficiency(args.rounds, threads_list=(1, 2), batch=4 if q else 8, size=128 if q else 256)
    args.eager_repeats = 1 if q else 2
    f = None if q else eager_child(args.eager_repeats)
    write_rst(args.out, a, b, c, d, e, f, args, info, cmd)


if __name__ == "__main__":
    main()
