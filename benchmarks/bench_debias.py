"""Benchmark: xdownscale's entropic OT map against POT's ``ot.da.SinkhornTransport``.

For each n = m and d, one data set of standardised samples is written to disk; then each
implementation runs in a fresh subprocess (fit, then transform of the n source samples), and
the parent reads its wall times, its peak resident memory (``ru_maxrss`` over the children of
a fresh intermediate interpreter whose only child is that run) and its map. Both get the same standardised data, the same absolute ``eps`` and
tight tolerances, so that their maps must agree; the table gives the largest difference
relative to the largest |T|, the time ratio POT / xdownscale and the peak memory of each.

    python benchmarks/bench_debias.py            # n in {2000, 5000, 20000}, d in {64, 1024}
    python benchmarks/bench_debias.py --quick    # n = 2000, d = 64 only

POT's class is given ``--pot-timeout`` seconds and ``--pot-memory`` GiB of address space per
configuration; when it cannot complete, the row says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CHILD = r"""
import json, sys, time, warnings
import numpy as np
impl, data, out, eps, tol, max_iter = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
d = np.load(data)
ys, zs = d["ys"], d["zs"]
info = {}
if impl == "xdownscale":
    from xdownscale import np_transport as nt
    t0 = time.perf_counter()
    res = nt.sinkhorn(ys, zs, eps, eps_start=float(d["med"]), tol=tol, max_iter=max_iter)
    t1 = time.perf_counter()
    T = nt.entropic_map(ys, zs, res.g, res.eps)
    t2 = time.perf_counter()
    info.update(n_iter=res.n_iter, err=res.marginal_error, converged=res.converged)
else:
    import ot
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        P = ot.da.SinkhornTransport(reg_e=eps, tol=tol, max_iter=max_iter)
        P.fit(Xs=ys, Xt=zs)
    t1 = time.perf_counter()
    T = P.transform(Xs=ys)
    t2 = time.perf_counter()
    info.update(n_iter=int(P.log_["niter"]), err=float(P.log_["err"][-1]),
                converged=not any("did not converge" in str(x.message) for x in w))
np.save(out, T)
info.update(fit=t1 - t0, transform=t2 - t1)
print("RESULT " + json.dumps(info))
"""


def make_data(n: int, d: int, seed: int, path: Path) -> float:
    """Two correlated Gaussian-mixture-like fields of d cells, standardised as debias does."""
    from xdownscale import np_transport as nt

    rng = np.random.default_rng(seed)
    k = min(d, 32)
    basis = rng.normal(size=(k, d)) / np.sqrt(k)
    y = rng.normal(size=(n, k)) @ basis + 0.3 * rng.normal(size=(n, d))
    z = (rng.standard_t(6, size=(n, k)) * np.linspace(2.0, 0.5, k)) @ basis
    z += 0.5 + 0.2 * rng.normal(size=(n, d))
    c, s = nt.standardization(y, z)
    ys, zs = (y - c) / s, (z - c) / s
    med = nt.median_cost(ys, zs, seed=seed)
    np.savez(path, ys=ys, zs=zs, med=med)
    return med


def run_child(impl: str, data: Path, out: Path, eps: float, tol: float, max_iter: int,
              timeout: float, mem_gib: float | None) -> dict:
    def limit() -> None:
        if mem_gib is not None:
            b = int(mem_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (b, b))

    cmd = [sys.executable, "-c", CHILD, impl, str(data), str(out), repr(eps), repr(tol),
           str(max_iter)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"status": f"not finished in {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    info: dict = {"wall": wall}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            info.update(json.loads(line[7:]))
    if "fit" not in info:
        tail = (stderr.strip().splitlines() or ["?"])[-1]
        if "MemoryError" in stderr or "Unable to allocate" in stderr:
            what = tail.split("Unable to allocate")[-1].split(" for ")[0].strip()
            return {"status": f"out of memory at the {mem_gib:g} GiB limit (a further {what})"}
        return {"status": f"failed: {tail[:100]}"}
    info["status"] = "ok"
    return info


def one_config(n: int, d: int, reg: float, tol: float, pot_tol: float, max_iter: int,
               timeout: float, mem: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        med = make_data(n, d, seed, tmp / "data.npz")
        eps = reg * med
        row = {"n": n, "d": d, "eps": eps, "med": med}
        for impl, t in (("xdownscale", tol), ("pot", pot_tol)):
            # a fresh interpreter per implementation, so ru_maxrss is that child's alone
            code = (  # noqa: UP031
                "import json, sys; sys.path.insert(0, %r); import bench_debias as b; "
                "from pathlib import Path; import resource; "
                "i = b.run_child(%r, Path(%r), Path(%r), %r, %r, %r, %r, %r); "
                "i['rss_gib'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20; "
                "print('ROW ' + json.dumps(i))"
            ) % (str(ROOT / "benchmarks"), impl, str(tmp / "data.npz"), str(tmp / f"{impl}.npy"),
                 eps, t, max_iter, timeout, mem if impl == "pot" else None)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            info = {"status": f"failed: {res.stderr.strip()[-100:]}"}
            for line in res.stdout.splitlines():
                if line.startswith("ROW "):
                    info = json.loads(line[4:])
            if info.get("status") != "ok":
                info.pop("rss_gib", None)
            row[impl] = info
        if row["xdownscale"]["status"] == "ok" and row["pot"]["status"] == "ok":
            a = np.load(tmp / "xdownscale.npy")
            b = np.load(tmp / "pot.npy")
            row["rel_diff"] = float(np.abs(a - b).max() / np.abs(b).max())
    print(json.dumps(row), flush=True)
    return row


def fmt(row: dict) -> str:
    o, p = row["xdownscale"], row["pot"]

    def cell(i: dict, key: str, f: str) -> str:
        return format(i[key], f) if i.get("status") == "ok" else "—"

    ratio = (f"{(p['fit'] + p['transform']) / (o['fit'] + o['transform']):.1f}"
             if o.get("status") == "ok" and p.get("status") == "ok" else "—")
    diff = f"{row['rel_diff']:.1e}" if "rel_diff" in row else "—"
    note = p["status"] if p.get("status") != "ok" else (
        "" if p.get("converged") else "POT stopped at max_iter")
    return (
        f"   * - {row['n']}\n     - {row['d']}\n"
        f"     - {cell(o, 'fit', '.1f')} + {cell(o, 'transform', '.1f')}\n"
        f"     - {cell(p, 'fit', '.1f')} + {cell(p, 'transform', '.1f')}\n"
        f"     - {ratio}\n     - {cell(o, 'rss_gib', '.2f')}\n     - {cell(p, 'rss_gib', '.2f')}\n"
        f"     - {cell(o, 'n_iter', 'd')} / {cell(p, 'n_iter', 'd')}\n"
        f"     - {diff}\n     - {note}\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 2000, d = 64 only")
    ap.add_argument("--n", type=int, nargs="*", default=[2000, 5000, 20000])
    ap.add_argument("--d", type=int, nargs="*", default=[64, 1024])
    ap.add_argument("--reg", type=float, default=0.02,
                    help="eps relative to the median cost (POT needs thousands of iterations "
                         "at the debias default 0.002)")
    ap.add_argument("--tol", type=float, default=1e-7, help="xdownscale L1 marginal error")
    ap.add_argument("--pot-tol", type=float, default=1e-8, help="POT L2 marginal error")
    ap.add_argument("--max-iter", type=int, default=20_000)
    ap.add_argument("--pot-timeout", type=float, default=1800.0)
    ap.add_argument("--pot-memory", type=float, default=14.0, help="GiB of address space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" /
                    "debias_results.inc")
    ap.add_argument("--append", action="store_true", help="add rows to an existing table")
    args = ap.parse_args()
    configs = [(2000, 64)] if args.quick else [(n, d) for n in args.n for d in args.d]
    rows = [one_config(n, d, args.reg, args.tol, args.pot_tol, args.max_iter,
                       args.pot_timeout, args.pot_memory, args.seed) for n, d in configs]
    from _machine import describe

    body = "".join(fmt(r) for r in rows)
    if args.append and args.out.exists():
        args.out.write_text(args.out.read_text().rstrip("\n") + "\n" + body)
        return
    cmd = "python benchmarks/bench_debias.py " + " ".join(sys.argv[1:])
    header = (
        f"Machine: {describe(['numpy', 'scipy', 'pot'])}.\n\n"
        f"Command: ``{cmd.strip()}`` (reg = {args.reg:g} x median cost; tolerances: "
        f"xdownscale L1 {args.tol:g}, POT L2 {args.pot_tol:g}; POT limited to "
        f"{args.pot_timeout:.0f} s and {args.pot_memory:g} GiB per configuration).\n\n"
        ".. list-table::\n   :header-rows: 1\n\n"
        "   * - n = m\n     - d\n     - xdownscale fit + transform (s)\n"
        "     - POT fit + transform (s)\n     - time ratio POT / ours\n"
        "     - peak RSS ours (GiB)\n     - peak RSS POT (GiB)\n     - iterations ours / POT\n"
        "     - max abs(T_ours - T_POT) / max abs(T_POT)\n     - note\n"
    )
    args.out.write_text(header + body)


if __name__ == "__main__":
    main()
