"""Validation: debias the low-fidelity Kolmogorov-flow fields, Wan et al. (2023) "NS 8x" rows.

Low-fidelity low-resolution (LFLR) vorticity from the biased coarse solver against the
coarsened (C', 8x) high-fidelity vorticity; covRMSE, MELR (unweighted, weighted) and KDE-KL
of the coarse fields before and after :func:`xdownscale.debias`, next to the published
numbers (METHODS.md section 8). Held-out evaluation: the map is fit on the first half of each
set (hist = LFLR, ref = fine) and the metrics compare the debiased second half of the LFLR
set against the second half of the coarsened fine set.

    python benchmarks/bench_wan_debias.py                # 8192 fine, 16384 coarse snapshots
    python benchmarks/bench_wan_debias.py --quick        # 256 / 512, a smoke run

The data come from ``kolmogorov_data.py`` (generated once, then cached). The table also gives
the *sampling floor*: each metric between the two halves of the coarsened high-fidelity set,
i.e. what a perfect debiaser would score with this many snapshots.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PUBLISHED = {  # Wan et al. (2023), NS 8x: LFLR, OT
    "covRMSE": (0.458, 0.083),
    "MELR unweighted": (1.254, 0.013),
    "MELR weighted": (0.196, 0.026),
    "KDE-KL": (29.30, 0.033),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-fine", type=int, default=8192)
    ap.add_argument("--n-coarse", type=int, default=16384)
    ap.add_argument("--trajectories", type=int, default=64)
    ap.add_argument("--reg", type=float, default=None, help="default: debias's default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "wan_debias_results.inc"
    )
    args = ap.parse_args()
    if args.quick:
        args.n_fine, args.n_coarse, args.trajectories = 256, 512, 16

    import xdownscale as xd
    from xdownscale import metrics
    import kolmogorov_data

    fine, lflr, t_gen = kolmogorov_data.load(
        args.n_fine, args.n_coarse, seed=args.seed, n_trajectories=args.trajectories
    )
    target = xd.coarsen(fine, 8)
    # interleaved halves (even / odd snapshots) so both halves cover every trajectory
    fit_f, ev_f = fine.isel(time=slice(0, None, 2)), target.isel(time=slice(1, None, 2))
    fit_c, ev_c = lflr.isel(time=slice(0, None, 2)), lflr.isel(time=slice(1, None, 2))
    kw = {} if args.reg is None else {"reg": args.reg}
    t0 = time.perf_counter()
    ot = xd.OptimalTransportDebiaser(**kw).fit(fit_f, fit_c)  # ref (fine: coarsened by C'), hist
    debiased = ot.apply(ev_c).compute()
    t_ot = time.perf_counter() - t0

    def scores(gen):
        return {
            "covRMSE": float(metrics.cov_rmse(gen, ev_f)),
            "MELR unweighted": float(metrics.melr(gen, ev_f)),
            "MELR weighted": float(metrics.melr(gen, ev_f, weighted=True)),
            "KDE-KL": float(metrics.kld(gen, ev_f)),
        }

    before, after = scores(ev_c), scores(debiased)
    floor = scores(target.isel(time=slice(0, None, 2)))  # fit half vs eval half of the truth
    from _machine import describe

    lines = [
        f"Machine: {describe(['numpy', 'torch', 'xarray'])}.",
        "",
        "Command: ``" + " ".join(["python benchmarks/bench_wan_debias.py", *sys.argv[1:]]) + "``; "
        f"{args.n_fine} fine (64^2) and {args.n_coarse} LFLR (8^2) snapshots "
        f"({args.trajectories} trajectories each), generated in {t_gen:.0f} s "
        f"(``benchmarks/kolmogorov_data.py``, cached); fit on {ot.state_.attrs['n_hist']} x {ot.state_.attrs['n_ref']} snapshots ({ot!r}), fit + "
        f"transform {t_ot:.1f} s; evaluated on the other {ev_c.sizes['time']} LFLR and "
        f"{ev_f.sizes['time']} coarsened fine snapshots.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - metric",
        "     - LFLR (ours)",
        "     - debiased (ours)",
        "     - reduction",
        "     - sampling floor",
        "     - LFLR (Wan et al.)",
        "     - OT (Wan et al.)",
        "     - reduction (Wan et al.)",
    ]
    for k, (pb, pa) in PUBLISHED.items():
        red = before[k] / after[k] if after[k] > 0 else float("inf")
        lines += [
            f"   * - {k}",
            f"     - {before[k]:.4g}",
            f"     - {after[k]:.4g}",
            f"     - {red:.1f}x",
            f"     - {floor[k]:.4g}",
            f"     - {pb:g}",
            f"     - {pa:g}",
            f"     - {pb / pa:.0f}x",
        ]
    lines += [
        "",
        "covRMSE is the relative Frobenius error (``normalize='reference'``); KDE-KL is summed "
        "over the 64 coarse cells (:func:`xdownscale.metrics.kld`). The sampling floor "
        "compares the two halves of the coarsened high-fidelity set: the score of a perfect "
        "debiaser with this many snapshots.",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
