"""Benchmark: xdownscale's Sinkhorn against POT's fastest entropic-OT paths, at equal accuracy.

Question (issue "build on POT or drop it"): at the ``debias`` default regularisation
(eps = 0.002 x median squared distance of the standardised samples) and tolerance (L1 marginal
error 1e-4), is any POT entry point as fast as :func:`xdownscale.np_transport.sinkhorn`?

Every configuration runs in a fresh subprocess on the same data (``bench_debias.make_data``:
a 32-mode Gaussian source against a heavier-tailed, shifted target plus noise, standardised as
``debias`` does), one at a time, with the same thread count for BLAS and torch. Each child
times only the solve (cost matrix included where the method needs one; imports and data
loading are not timed), reads its peak resident set (``VmHWM``) right after the first solve,
then -- untimed -- evaluates the returned plan in float64: the L1 row and column marginal
errors ``sum_i |sum_j P_ij - a_i|``, ``sum_j |sum_i P_ij - b_j|`` (the larger is reported,
the quantity xdownscale's ``tol`` bounds) and the barycentric projection of the training
points ``T_i = sum_j P_ij z_j / sum_j P_ij`` (what ``entropic_map`` gives on them). The maps
are compared with xdownscale's and with a reference solve (xdownscale, ``--ref-tol``).

POT's own criterion is the L2 norm of the column error (checked every 10 iterations), which
cannot express "L1 <= tol" tightly (``stopThr = tol / sqrt(m)`` guarantees it but over-solves
when the error is concentrated on few columns). So, as a wrapper built on POT would, the POT
solvers are called in chunks of ``--chunk`` iterations with ``stopThr=0`` and ``warmstart=``
the last potentials (the same iterates as one long call), and stop once the L1 column error of
the returned plan (its rows are exact) is <= tol; a ``:l2`` suffix instead makes one call with
``stopThr = tol / sqrt(m)``, a ``:probe`` suffix times ``--probe-iters`` cold-start iterations
only (for paths far too slow to converge). ``sinkhorn_epsilon_scaling`` runs as one call with
its own criterion (sum of the squared L2 row and column errors <= ``tol**2 / m``).
``*-escale`` drives ``sinkhorn_log`` through xdownscale's epsilon schedule (median cost,
halved down to eps; intermediate stages to L1 1e-3 or 100 iterations), warm-starting each
stage from the last: the most favourable way to build the debias solver on POT.

The reference solve (``--ref-tol``) is off by default: at eps = 0.002 x median cost even
xdownscale needs minutes to go far below 1e-4.

    python benchmarks/bench_debias_pot.py                    # n = 2000, d = 1024
    python benchmarks/bench_debias_pot.py --n 5000 --methods xd-numpy pot-log-f64:probe
    python benchmarks/bench_debias_pot.py --list             # the methods
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent

# name -> (description, family)
METHODS = {
    "xd-numpy": "xdownscale np_transport.sinkhorn, device='cpu' (numpy float64)",
    "xd-torch": "xdownscale np_transport.sinkhorn, device='torch:cpu' (torch float64)",
    "pot-log-f32": "ot.sinkhorn(method='sinkhorn_log'), torch float32, M = ot.dist",
    "pot-log-f64": "ot.sinkhorn(method='sinkhorn_log'), torch float64, M = ot.dist",
    "pot-log-f32-escale": "ot.sinkhorn(method='sinkhorn_log', warmstart=...) driven through "
                          "xdownscale's eps schedule, torch float32",
    "pot-log-f64-escale": "the same in torch float64",
    "pot-stab-f64": "ot.sinkhorn(method='sinkhorn_stabilized'), torch float64",
    "pot-escaling-f64": "ot.bregman.sinkhorn_epsilon_scaling(epsilon0=median cost), torch "
                        "float64",
    "pot-log-np": "ot.sinkhorn(method='sinkhorn_log'), numpy float64 (POT's default path)",
    "pot-lazy-f32": "ot.bregman.empirical_sinkhorn(isLazy=True), torch float32 (no n x m M)",
}
DEFAULT_METHODS = ["xd-numpy", "xd-torch", "pot-log-f32", "pot-log-f64", "pot-log-f32-escale",
                   "pot-log-f64-escale", "pot-stab-f64", "pot-escaling-f64", "pot-log-np",
                   "pot-lazy-f32"]


# ----------------------------------------------------------------------------- child side


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _plan_report(P: np.ndarray, zs: np.ndarray) -> tuple[float, float, np.ndarray]:
    """L1 row and column marginal errors (uniform weights) and the barycentric projection."""
    n, m = P.shape
    rs = P.sum(axis=1)
    cs = P.sum(axis=0)
    row = float(np.abs(rs - 1.0 / n).sum())
    col = float(np.abs(cs - 1.0 / m).sum())
    T = (P @ zs) / rs[:, None]
    return row, col, T


def child(spec: dict) -> None:
    """Run one configuration; print ``RESULT {json}``."""
    import torch

    torch.set_num_threads(spec["threads"])
    sys.path.insert(0, spec["repo"])
    from xdownscale import np_transport as nt

    data = np.load(spec["data"])
    ys, zs, med = data["ys"], data["zs"], float(data["med"])
    n, m = ys.shape[0], zs.shape[0]
    eps, tol, method = spec["eps"], spec["tol"], spec["method"]
    max_iter, repeats, budget = spec["max_iter"], spec["repeats"], spec["repeat_budget"]
    verbose = spec.get("verbose", False)
    info: dict = {"method": method, "rss_base_mib": _vm_kb("VmRSS") / 1024}
    if method.startswith("pot"):
        import warnings

        import ot

        warnings.simplefilter("ignore")
    def run_once() -> dict:
        r: dict = {}
        t0 = time.perf_counter()
        if method.startswith("xd"):
            dev = "cpu" if method == "xd-numpy" else "torch:cpu"
            res = nt.sinkhorn(ys, zs, eps, tol=tol, eps_start=med, eps_decay=0.5,
                              max_iter=max_iter, device=dev)
            r["t_solve"] = time.perf_counter() - t0
            r["t_cost"] = 0.0  # built inside the solve
            r.update(n_iter=res.n_iter, own_err=res.marginal_error, converged=res.converged)
            r["_sol"] = ("fg", res.f, res.g)
            return r
        kind, _, mode = method.partition(":")  # mode: "" (L1 chunks), "l2", "probe"
        probe = mode == "probe"
        if kind == "pot-lazy-f32":
            X = torch.as_tensor(ys, dtype=torch.float32)
            Z = torch.as_tensor(zs, dtype=torch.float32)
            f, g, lg = ot.bregman.empirical_sinkhorn(
                X, Z, eps, numIterMax=spec["probe_iters"] if probe else max_iter,
                stopThr=0.0 if probe else tol, isLazy=True, batchSize=500, log=True,
                verbose=verbose)  # stops on the L1 row error, like xdownscale
            r["t_solve"] = time.perf_counter() - t0
            r["t_cost"] = 0.0
            r.update(n_iter=int(lg["niter"]) + 1, probe=probe,
                     own_err=float(lg["err"][-1]) if lg["err"] else math.nan)
            # P_ij = exp(f_i + g_j - C_ij / eps)
            r["_sol"] = ("logfg", f.double().numpy(), g.double().numpy())
            return r
        if kind == "pot-log-np":
            M = ot.dist(ys, zs)  # numpy float64
            a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)

            def l1col(P):
                return float(np.abs(P.sum(axis=0) - b).sum())
        else:
            dt = torch.float32 if "f32" in kind else torch.float64
            M = ot.dist(torch.as_tensor(ys, dtype=dt), torch.as_tensor(zs, dtype=dt))
            a = torch.full((n,), 1.0 / n, dtype=dt)
            b = torch.full((m,), 1.0 / m, dtype=dt)

            def l1col(P):
                return float((P.sum(dim=0) - b).abs().sum())
        t1 = time.perf_counter()
        r["t_cost"] = t1 - t0
        chunk = spec["chunk"]

        def stage(e, ws, budget, stage_tol, pot_method):
            """POT from warm start ``ws`` until the L1 marginal error <= stage_tol.

            ":l2": one call that stops on POT's own L2 criterion (stopThr = tol / sqrt(m)).
            Otherwise calls of ``chunk`` iterations (stopThr=0), the L1 column error of the
            returned plan (its rows are exact) checked after each, as a wrapper would.
            """
            if probe:
                P, lg = ot.sinkhorn(a, b, M, e, method=pot_method, numItermax=budget,
                                    stopThr=0.0, log=True, warn=False, warmstart=ws)
                return P, lg, budget, l1col(P)
            if mode == "l2":
                P, lg = ot.sinkhorn(a, b, M, e, method=pot_method, numItermax=budget,
                                    stopThr=stage_tol / math.sqrt(m), log=True, warn=False,
                                    warmstart=ws, verbose=verbose)
                it = int(lg.get("niter", lg.get("n_iter"))) + 1
                return P, lg, it, l1col(P)
            it = 0
            while True:
                k = min(chunk, budget - it)
                P, lg = ot.sinkhorn(a, b, M, e, method=pot_method, numItermax=k, stopThr=0.0,
                                    log=True, warn=False, warmstart=ws)
                it += k
                ws = ((lg["log_u"], lg["log_v"]) if pot_method == "sinkhorn_log"
                      else (lg["alpha"], lg["beta"]))
                err = l1col(P)
                if True:  # one line per chunk: the parent reports the last on a timeout
                    print(f"PROGRESS eps={e:.4g} it={it} L1={err:.3e}", flush=True)
                if not math.isfinite(err) or err <= stage_tol or it >= budget:
                    return P, lg, it, err

        if kind in ("pot-log-f32", "pot-log-f64", "pot-log-np", "pot-stab-f64"):
            pm = "sinkhorn_stabilized" if kind == "pot-stab-f64" else "sinkhorn_log"
            P, lg, it, err = stage(eps, None, spec["probe_iters"] if probe else max_iter, tol,
                                   pm)
            r["n_iter"] = it
        elif kind.endswith("-escale"):
            sched = nt.epsilon_schedule(eps, med, 0.5)
            u = v = prev = None
            total = 0
            for k, e in enumerate(sched):
                final = k == len(sched) - 1
                if u is not None:
                    u, v = u * (prev / e), v * (prev / e)  # the same potentials f = e u
                P, lg, it, err = stage(
                    e, None if u is None else (u, v),
                    max_iter - total if final else nt.STAGE_MAX_ITER,
                    tol if final else max(tol, nt.STAGE_TOL), "sinkhorn_log")
                u, v, prev = lg["log_u"], lg["log_v"], e
                total += it
            r["n_iter"] = total
        elif kind == "pot-escaling-f64":
            P, lg = ot.bregman.sinkhorn_epsilon_scaling(
                a, b, M, eps, numItermax=max(1, max_iter // 100), epsilon0=med,
                numInnerItermax=100, stopThr=tol**2 / m, log=True, verbose=verbose)
            r["n_iter"] = 100 * (int(lg["niter"]) + 1)  # inner iterations, at most
            err = l1col(P)
        else:
            raise ValueError(method)
        r["t_solve"] = time.perf_counter() - t0
        r["own_err"] = err
        r["probe"] = probe
        r["_sol"] = ("plan", P)
        return r

    times, first = [], None
    while True:
        r = run_once()
        times.append(r["t_solve"])
        if first is None:
            first = r
            info["peak_mib"] = _vm_kb("VmHWM") / 1024
        if len(times) >= repeats or sum(times) + times[-1] > budget:
            break
        del r
    info.update({k: v for k, v in first.items() if not k.startswith("_")})
    info["t_solve_all"] = times
    info["t_solve"] = float(np.median(times))
    # ---- untimed evaluation of the first run's solution, in float64
    sol = first["_sol"]
    finite = True
    if sol[0] == "plan":
        P = sol[1]
        P = P.double().numpy() if hasattr(P, "double") else np.asarray(P, dtype=np.float64)
        finite = bool(np.isfinite(P).all()) and P.sum() > 0
    else:
        C = nt.sqdist(ys, zs)
        if sol[0] == "fg":  # P = a b exp((f + g - C) / eps)
            P = np.exp((sol[1][:, None] + sol[2][None, :] - C) / eps) / (n * m)
        else:  # P = exp(f + g - C / eps)
            P = np.exp(sol[1][:, None] + sol[2][None, :] - C / eps)
        finite = bool(np.isfinite(P).all())
    if finite:
        row, col, T = _plan_report(P, zs)
        info.update(err_row=row, err_col=col, err=max(row, col), finite=True)
        np.save(spec["out"], T)
    else:
        info.update(err=math.nan, finite=False)
    print("RESULT " + json.dumps(info), flush=True)


# ----------------------------------------------------------------------------- parent side


def run_config(spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(spec["threads"])
    cmd = [sys.executable, "-u", str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.strip() and not ln.startswith("-")]
        last = [ln for ln in lines if ln.startswith("PROGRESS")] or [
            "PROGRESS " + ln for ln in lines[-1:]]
        return {"method": spec["method"], "status": f"not finished in {timeout:.0f} s",
                "progress": last[-1][9:].strip() if last else ""}
    info = {"method": spec["method"], "status": "failed", "wall": time.perf_counter() - t0}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            info.update(json.loads(line[7:]))
            info["status"] = "ok"
    if info["status"] != "ok":
        tail = (stderr.strip().splitlines() or ["?"])[-1]
        info["status"] = f"failed: {tail[:120]}"
    return info


def dist_probe(spec: dict) -> None:
    """Time the n x m cost matrix: ot.dist (numpy f64, torch f32/f64) against nt.sqdist."""
    import ot
    import torch

    torch.set_num_threads(spec["threads"])
    sys.path.insert(0, spec["repo"])
    from xdownscale import np_transport as nt

    data = np.load(spec["data"])
    ys, zs = data["ys"], data["zs"]
    out = {}
    cands = {
        "nt.sqdist (numpy f64)": lambda: nt.sqdist(ys, zs),
        "ot.dist (numpy f64)": lambda: ot.dist(ys, zs),
        "ot.dist (torch f64)": lambda: ot.dist(torch.as_tensor(ys), torch.as_tensor(zs)),
        "ot.dist (torch f32)": lambda: ot.dist(torch.as_tensor(ys, dtype=torch.float32),
                                               torch.as_tensor(zs, dtype=torch.float32)),
    }
    ref = nt.sqdist(ys, zs)
    for name, fn in cands.items():
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            M = fn()
            ts.append(time.perf_counter() - t0)
        Mn = M.double().numpy() if hasattr(M, "double") else M
        out[name] = {"t": float(np.median(ts)),
                     "maxrel": float(np.abs(Mn - ref).max() / np.abs(ref).max())}
    print("RESULT " + json.dumps(out), flush=True)


def _status(r: dict, tol: float) -> str:
    if r["status"] != "ok":
        return r["status"] + (f"; reached {r['progress']}" if r.get("progress") else "")
    if r.get("probe"):
        return f"probe: {r['n_iter']} iterations timed, not converged"
    if not r.get("finite", True):
        return "plan not finite (NaN / overflow)"
    if not r.get("err", math.inf) <= tol:
        return f"stopped above the target (own error {r.get('own_err', math.nan):.1e})"
    return "converged"


def _cells(r: dict, base: dict | None, tol: float) -> list[str]:
    ok = r["status"] == "ok"

    def g(k, f):
        v = r.get(k)
        if not ok or v is None or (isinstance(v, float) and math.isnan(v)):
            return "—"
        return format(v, f)

    probe = r.get("probe", False)
    nrep = len(r.get("t_solve_all", []))
    solve = "—" if not ok else (f"{r['t_solve']:.2f}" + (f" (median of {nrep})" if nrep > 1
                                                        else ""))
    conv = ok and not probe and r.get("finite", True) and r.get("err", math.inf) <= tol
    ratio = f"{r['t_solve'] / base['t_solve']:.1f}" if conv and base else "—"
    per_it = (f"{1e3 * (r['t_solve'] - r['t_cost']) / r['n_iter']:.1f}"
              if ok and r.get("n_iter") else "—")
    return [f"``{r['method']}``", solve, g("t_cost", ".2f"), ratio, g("n_iter", "d"), per_it,
            "—" if probe else g("err", ".1e"), g("peak_mib", ".0f"), g("rss_base_mib", ".0f"),
            "—" if probe else g("dT_xd", ".1e"), "—" if probe else g("dT_ref", ".1e"),
            _status(r, tol)]


COLS = ["method", "solve (s)", "of which M (s)", "time / xd-numpy", "iterations",
        "ms / iteration (without M)", "L1 marginal error", "peak RSS (MiB)", "RSS before solve (MiB)",
        "max abs(T - T_xd)", "max abs(T - T_ref)", "status"]


def fmt_table(rows: list[dict], n: int, d: int, eps: float, tol: float) -> str:
    head = (f"n = m = {n}, d = {d}, eps = {eps:.4g}, target L1 marginal error {tol:g}:")
    lines = [head, "", ".. list-table::", "   :header-rows: 1", ""]
    lines.append("   * - " + "\n     - ".join(COLS))
    base = next((r for r in rows if r["method"] == "xd-numpy" and r["status"] == "ok"), None)
    for r in rows:
        lines.append("   * - " + "\n     - ".join(_cells(r, base, tol)))
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict], tol: float) -> None:
    base = next((r for r in rows if r["method"] == "xd-numpy" and r["status"] == "ok"), None)
    short = ["method", "solve s", "M s", "x xd", "iter", "ms/it", "L1 err", "peak", "base",
             "dT_xd", "dT_ref", "status"]
    w = [24, 18, 6, 6, 6, 7, 8, 6, 6, 8, 8, 0]
    print(" ".join(h.ljust(k) for h, k in zip(short, w)))
    for r in rows:
        print(" ".join(c.replace("``", "").ljust(k) for c, k in zip(_cells(r, base, tol), w)),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dist-probe", help=argparse.SUPPRESS)
    ap.add_argument("--list", action="store_true", help="list the methods and exit")
    ap.add_argument("--n", type=int, nargs="*", default=[2000])
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--methods", nargs="*", default=DEFAULT_METHODS)
    ap.add_argument("--reg", type=float, default=0.002, help="eps / median cost")
    ap.add_argument("--tol", type=float, default=1e-4, help="target L1 marginal error")
    ap.add_argument("--ref-tol", type=float, default=0.0,
                    help="tolerance of the reference solve (xdownscale); 0: none")
    ap.add_argument("--ref-timeout", type=float, default=180.0)
    ap.add_argument("--max-iter", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3, help="timed solves per configuration")
    ap.add_argument("--repeat-budget", type=float, default=40.0,
                    help="no further repeat once the solves would pass this many seconds")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per configuration")
    ap.add_argument("--chunk", type=int, default=20,
                    help="POT iterations per call between two L1 checks")
    ap.add_argument("--probe-iters", type=int, default=20,
                    help="iterations of a ':probe' method (time per iteration only)")
    ap.add_argument("--method-timeout", nargs="*", default=[], metavar="METHOD=S",
                    help="per-method timeout overrides")
    ap.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repo", type=Path, default=DEFAULT_REPO)
    ap.add_argument("--verbose", action="store_true", help="POT prints its progress")
    ap.add_argument("--no-dist-probe", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="rst include (default docs/benchmarks/debias_pot_results.inc)")
    ap.add_argument("--json", type=Path, default=None, help="also dump the raw rows")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.dist_probe:
        dist_probe(json.loads(args.dist_probe))
        return
    if args.list:
        for k, v in METHODS.items():
            print(f"{k:20s} {v}")
        return
    timeouts = {k: float(v) for k, v in (x.split("=") for x in args.method_timeout)}
    sys.path.insert(0, str(args.repo / "benchmarks"))
    sys.path.insert(0, str(args.repo))
    import bench_debias  # the data of bench_debias.py
    from _machine import describe

    out = args.out or args.repo / "docs" / "benchmarks" / "debias_pot_results.inc"
    blocks, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.n:
            data = tmp / f"data_{n}.npz"
            med = bench_debias.make_data(n, args.d, args.seed, data)
            eps = args.reg * med
            base = {"data": str(data), "eps": eps, "tol": args.tol, "threads": args.threads,
                    "repo": str(args.repo), "max_iter": args.max_iter, "verbose": args.verbose,
                    "chunk": args.chunk, "probe_iters": args.probe_iters}
            print(f"# n = m = {n}, d = {args.d}, median cost {med:.4g}, eps {eps:.4g}",
                  flush=True)
            ref = {"status": "none"}
            if args.ref_tol > 0:
                ref = run_config({**base, "method": "xd-numpy", "tol": args.ref_tol,
                                  "repeats": 1, "repeat_budget": 0.0,
                                  "out": str(tmp / f"ref_{n}.npy")}, args.ref_timeout)
                print(f"# reference (xd-numpy, tol {args.ref_tol:g}): {ref['status']}, L1 "
                      f"error {ref.get('err', math.nan):.1e}, {ref.get('n_iter')} iterations, "
                      f"{ref.get('t_solve', math.nan):.1f} s", flush=True)
            T_ref = np.load(tmp / f"ref_{n}.npy") if ref["status"] == "ok" else None
            rows = []
            for meth in args.methods:
                spec = {**base, "method": meth,
                        "repeats": 1 if meth.endswith(":probe") else args.repeats,
                        "repeat_budget": args.repeat_budget,
                        "out": str(tmp / f"T_{meth}_{n}.npy")}
                r = run_config(spec, timeouts.get(meth, args.timeout))
                r["n"] = n
                rows.append(r)
                print(json.dumps(r), flush=True)
            T_xd = (np.load(tmp / f"T_xd-numpy_{n}.npy")
                    if (tmp / f"T_xd-numpy_{n}.npy").exists() else None)
            for r in rows:
                p = tmp / f"T_{r['method']}_{n}.npy"
                if r["status"] == "ok" and p.exists():
                    T = np.load(p)
                    if T_xd is not None:
                        r["dT_xd"] = float(np.abs(T - T_xd).max())
                    if T_ref is not None:
                        r["dT_ref"] = float(np.abs(T - T_ref).max())
            scale = T_ref if T_ref is not None else T_xd
            if scale is not None:
                print(f"# max |T| = {np.abs(scale).max():.3g}")
            print_table(rows, args.tol)
            blocks.append(fmt_table(rows, n, args.d, eps, args.tol)
                          + (f"\nThe maps are of magnitude max abs(T) = "
                             f"{np.abs(scale).max():.3g}"
                             + (f"; reference: xdownscale at tol {args.ref_tol:g} "
                                f"({ref['n_iter']} iterations, L1 error {ref['err']:.1e})"
                                if T_ref is not None else "") + ".\n"
                             if scale is not None else ""))
            raw.append({"n": n, "eps": eps, "med": med, "ref": ref, "rows": rows})
            if not args.no_dist_probe and n == args.n[0]:
                res = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--dist-probe",
                     json.dumps({**base})], capture_output=True, text=True, check=False,
                    env={**os.environ, "OMP_NUM_THREADS": str(args.threads),
                         "OPENBLAS_NUM_THREADS": str(args.threads)})
                probe = {}
                for line in res.stdout.splitlines():
                    if line.startswith("RESULT "):
                        probe = json.loads(line[7:])
                if probe:
                    print(f"# cost matrix, n = m = {n}, d = {args.d} (median of 3):")
                    txt = [f"Cost matrix alone, n = m = {n}, d = {args.d} (median of 3 runs):",
                           ""]
                    for k, v in probe.items():
                        print(f"#   {k:26s} {v['t']:.3f} s  (max rel. diff {v['maxrel']:.1e})")
                        txt.append(f"* {k}: {v['t']:.3f} s (max relative difference to "
                                   f"nt.sqdist {v['maxrel']:.1e})")
                    blocks.append("\n".join(txt) + "\n")
                raw[-1]["dist_probe"] = probe
    cmd = "python benchmarks/bench_debias_pot.py " + " ".join(sys.argv[1:])
    header = (f"Machine: {describe(['numpy', 'torch', 'pot'])}; {args.threads} threads for "
              f"torch and BLAS.\n\nCommand: ``{cmd.strip()}`` (POT limited to "
              f"{args.timeout:.0f} s per configuration; solve time is the median of up to "
              f"{args.repeats} runs).\n\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "\n".join(blocks))
    print(f"# wrote {out}")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
