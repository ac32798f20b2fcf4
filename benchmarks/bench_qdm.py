"""Benchmark xdownscale.qdm against xsdba.QuantileDeltaMapping (and python-cmethods).

Same run, same synthetic data: a 64 x 64 grid, 30 years of daily ref, hist and sim (noleap
calendar, float32, dask-chunked over space), n_quantiles 50 and 500, group "time" and
"time.month", additive (normal data) and multiplicative (gamma data, strictly positive so that
xsdba gives finite results). Every (library, configuration) runs in a fresh subprocess: its wall
time is the median of ``--repeats`` runs of ``train + adjust + compute`` (data generation and
imports excluded), and its peak memory is the child's peak RSS (``VmHWM`` of
``/proc/self/status``, read before any untimed bookkeeping; unlike ``ru_maxrss`` it is not
inherited from the parent through fork), which includes the input data and its generation;
a "data only" child gives that baseline. Results are compared with xsdba's (max relative difference, and the count of values
differing by more than 1e-4 relative). python-cmethods has no grouping and different quantile
conventions: it runs for group "time" on numpy input and is reported for speed only.

Run ``python benchmarks/bench_qdm.py`` (several minutes) or ``--quick`` for a smoke run; the
table goes to ``docs/benchmarks/qdm_results.inc`` (``--out``), included by docs/benchmarks/qdm.rst.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_model, peak_rss_kb

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- child side


def make_data(ny: int, years: int, kind: str, chunk: int):
    import numpy as np
    import xarray as xr

    n_t = 365 * years
    rng = np.random.default_rng(0)

    def series(start, a, b):
        shape = (n_t, ny, ny)
        if kind == "additive":
            v = rng.normal(a, b, shape).astype(np.float32)
            units = "K"
        else:
            v = rng.gamma(a, b, shape).astype(np.float32) + np.float32(1e-3)
            units = "mm d-1"
        t = xr.date_range(f"{start}-01-01", periods=n_t, freq="D", calendar="noleap",
                          use_cftime=True)
        da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t},
                          attrs={"units": units})
        return da.chunk(time=-1, y=chunk, x=chunk)

    if kind == "additive":
        return series(1981, 285, 5), series(1981, 283, 6), series(2041, 287, 6)
    return series(1981, 0.6, 4), series(1981, 0.5, 5), series(2041, 0.5, 6)


def child(args) -> None:
    import numpy as np

    ref, hist, sim = make_data(args.ny, args.years, args.kind, args.chunk)
    # imports (and pint's registry) are not timed
    if args.lib == "xdownscale":
        import cf_xarray.units  # noqa: F401

        import xdownscale  # noqa: F401
    elif args.lib == "xsdba":
        import xsdba
    elif args.lib == "cmethods":
        import cmethods  # noqa: F401
    times = []
    out = None
    for _ in range(args.repeats if args.lib != "data" else 0):
        t0 = time.perf_counter()
        if args.lib == "xdownscale":
            from xdownscale import qdm

            out = qdm(sim, ref, hist, kind=args.kind, n_quantiles=args.nq, group=args.group,
                      interp="nearest", extrapolation="constant").values
        elif args.lib == "xsdba":
            import warnings

            import xsdba

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                qm = xsdba.QuantileDeltaMapping.train(
                    ref, hist, nquantiles=args.nq, group=args.group,
                    kind="+" if args.kind == "additive" else "*",
                )
                out = qm.adjust(sim, interp="nearest", extrapolation="constant")
                out = out.transpose(*sim.dims).values
        elif args.lib == "cmethods":
            from cmethods import adjust

            r, h, s = (d.compute().rename("v") for d in (ref, hist, sim))
            if _ == 0:
                times.append(None)
                t0 = time.perf_counter()
            out = adjust("quantile_delta_mapping", r, h, s, n_quantiles=args.nq,
                         kind="+" if args.kind == "additive" else "*",
                         input_core_dims={"obs": "time", "simh": "time", "simp": "time"})
            out = out["v"].transpose(*sim.dims).values
        times.append(time.perf_counter() - t0)
    times = [t for t in times if t is not None]
    peak_mb = _vm_hwm_mb()  # before the untimed bookkeeping below
    if out is not None and args.save:
        np.save(args.save, np.asarray(out, dtype=np.float32))
        del out
    if args.lib == "xdownscale" and args.save:  # untimed: where sim's tau is between two nodes
        from xdownscale import np_qdm

        sv = sim.values
        if args.group == "time":
            labels, groups = np.zeros(sv.shape[0], int), np.array([0])
        else:
            labels, groups = sim.time.dt.month.values, np.arange(1, 13)
        tie = np.zeros(sv.shape, dtype=bool)
        for row in range(sv.shape[1]):  # one grid row at a time: small temporaries
            x = sv[:, row].T
            for idx, _ in np_qdm.group_members(labels, groups):
                k = np_qdm.rank_pct(x[:, idx]) * args.nq
                near = (np.abs(k - np.round(k)) < 1e-6) & (k > 0.5) & (k < args.nq - 0.5)
                tie[idx, row] = near.T
        np.save(args.save + ".tie.npy", tie)
    print(json.dumps({"times": times, "peak_mb": peak_mb}))


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image in MB (see _machine.peak_rss_kb)."""
    return peak_rss_kb() / 1024.0


# ----------------------------------------------------------------------------- parent side


def run_child(lib, cfg, opts, save) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--lib", lib, "--kind", cfg["kind"], "--nq",
        str(cfg["nq"]), "--group", cfg["group"], "--ny", str(opts.ny), "--years",
        str(opts.years), "--chunk", str(opts.chunk), "--save", save, "--repeats",
        str(opts.repeats if lib == "xdownscale" else opts.peer_repeats),
    ]
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        stdout, stderr = fo.read(), fe.read()
    if proc.returncode:
        raise RuntimeError(f"{lib} {cfg} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def compare(f_me: str, f_xs: str, f_tie: str) -> dict:
    """Relative differences, read in slabs (memory-mapped) so the parent stays small."""
    import numpy as np

    a_all, b_all = np.load(f_me, mmap_mode="r"), np.load(f_xs, mmap_mode="r")
    t_all = np.load(f_tie, mmap_mode="r")
    out = {"max_rel": 0.0, "max_rel_tie": 0.0, "n_off": 0, "n_tie": 0, "n": int(a_all.size)}
    for t0 in range(0, a_all.shape[0], 1000):
        a = np.asarray(a_all[t0 : t0 + 1000], dtype=np.float64)
        b = np.asarray(b_all[t0 : t0 + 1000], dtype=np.float64)
        tie = np.asarray(t_all[t0 : t0 + 1000])
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
        off = rel > 1e-4
        out["max_rel"] = max(out["max_rel"], float(np.max(rel[~tie], initial=0.0)))
        out["max_rel_tie"] = max(out["max_rel_tie"], float(np.max(rel[tie], initial=0.0)))
        out["n_off"] += int(np.sum(off & ~tie))
        out["n_tie"] += int(np.sum(off & tie))
    return out


def machine_info() -> str:
    import dask
    import numpy
    import xarray

    cpu = cpu_model()
    vers = {"python": platform.python_version(), "numpy": numpy.__version__,
            "xarray": xarray.__version__, "dask": dask.__version__}
    for name in ("xsdba", "python-cmethods"):
        try:
            from importlib.metadata import version

            vers[name] = version(name)
        except Exception:
            pass
    from xdownscale import __version__

    vers["xdownscale"] = __version__
    return (f"CPU: {cpu}, {os.cpu_count()} cores (shared machine); "
            + ", ".join(f"{k} {v}" for k, v in vers.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16 x 16 grid, 10 years, 1 repeat")
    p.add_argument("--repeats", type=int, default=3, help="repeats of xdownscale (median)")
    p.add_argument("--peer-repeats", type=int, default=2, help="repeats of xsdba/cmethods")
    p.add_argument("--no-cmethods", action="store_true")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "qdm_results.inc"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lib", default="xdownscale", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="additive", help=argparse.SUPPRESS)
    p.add_argument("--nq", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--group", default="time", help=argparse.SUPPRESS)
    p.add_argument("--ny", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--years", type=int, default=30, help=argparse.SUPPRESS)
    p.add_argument("--chunk", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--save", default="", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.child:
        child(opts)
        return
    if opts.quick:
        opts.ny, opts.years, opts.chunk, opts.repeats, opts.peer_repeats = 16, 10, 8, 1, 1

    configs = [
        {"kind": k, "nq": nq, "group": g}
        for k in ("additive", "multiplicative")
        for g in ("time", "time.month")
        for nq in (50, 500)
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = run_child("data", configs[0], opts, os.path.join(tmp, "none.npy"))
        print(f"data only: peak {base['peak_mb']:.0f} MB", flush=True)
        for cfg in configs:
            f_me, f_xs, f_cm = (os.path.join(tmp, f"{n}.npy") for n in ("me", "xs", "cm"))
            me = run_child("xdownscale", cfg, opts, f_me)
            xs = run_child("xsdba", cfg, opts, f_xs)
            stats = compare(f_me, f_xs, f_me + ".tie.npy")
            row = {
                **cfg,
                "me_s": statistics.median(me["times"]),
                "xs_s": statistics.median(xs["times"]),
                "me_mb": me["peak_mb"],
                "xs_mb": xs["peak_mb"],
                **stats,
                "cm_s": None,
            }
            if cfg["group"] == "time" and not opts.no_cmethods:
                cm = run_child("cmethods", cfg, opts, f_cm)
                row["cm_s"] = statistics.median(cm["times"])
                row["cm_mb"] = cm["peak_mb"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_table(rows, base["peak_mb"], opts)


def write_table(rows, base_mb, opts) -> None:
    cmd = "python benchmarks/bench_qdm.py" + (" --quick" if opts.quick else "")
    lines = [
        ".. This file is written by benchmarks/bench_qdm.py; do not edit by hand.",
        "",
        f"Machine: {machine_info()}.",
        "",
        f"Command: ``{cmd}`` ({opts.ny} x {opts.ny} grid, {opts.years} years daily for each of "
        f"ref, hist and sim, float32, chunks of {opts.chunk} x {opts.chunk} cells; medians of "
        f"{opts.repeats} (xdownscale) and {opts.peer_repeats} (peers) runs; peak RSS of a fresh "
        f"process per configuration, of which {base_mb:.0f} MB is the input data alone).",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - kind",
        "     - group",
        "     - n_quantiles",
        "     - xdownscale (s)",
        "     - xsdba (s)",
        "     - speed-up",
        "     - peak MB xdownscale / xsdba",
        "     - max rel. diff, ties excluded (values > 1e-4)",
        "     - values > 1e-4 at exact node ties",
        "     - python-cmethods (s)",
    ]
    for r in rows:
        cm = "—" if r["cm_s"] is None else f"{r['cm_s']:.2f} (peak {r['cm_mb']:.0f} MB)"
        lines += [
            f"   * - {r['kind']}",
            f"     - {r['group']}",
            f"     - {r['nq']}",
            f"     - {r['me_s']:.2f}",
            f"     - {r['xs_s']:.2f}",
            f"     - {r['xs_s'] / r['me_s']:.1f}x",
            f"     - {r['me_mb']:.0f} / {r['xs_mb']:.0f}",
            f"     - {r['max_rel']:.1e} ({r['n_off']} of {r['n']})",
            f"     - {r['n_tie']}",
            f"     - {cm}",
        ]
    Path(opts.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
