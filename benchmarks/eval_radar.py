"""Evaluate the radar model on the held-out MeteoSwiss 2017-01-31 event against bicubic
interpolation and pysteps' RainFARM, write the numbers into the model card and the docs,
and (``--install``) install the weights as the package's embedded default.

    python benchmarks/eval_radar.py --weights /tmp/xds_radar/radar-8x.pt --install

Protocol: the truth is a fully covered 256 x 256 km window of the held-out event (centred in
the largest window that is inside radar coverage in every frame; chosen by coverage only),
``--frames`` frames evenly spaced over the event. The coarse input is the 8 x 8 block mean of
the truth (32 x 32 cells of 8 km). Every method sees the same coarse fields:

- bicubic: :func:`xdownscale.upsample` (Keys kernel), clipped at 0;
- RainFARM: ``pysteps.downscaling.rainfarm.downscale(coarse, ds_factor=8)`` with its defaults
  (slope estimated from each coarse field, no smoothing kernel), 16 realisations (numpy seeds
  0-15);
- the model: :func:`xdownscale.ensemble` with ``scale="auto"`` (sigma* from the spectrum in the
  card), EDM Heun ``--steps`` steps, 16 members, seed 0.

Metrics (physical units, mm/h; :mod:`xdownscale.metrics`): MELR unweighted and weighted of the
sample-averaged spectra (members and frames pooled) against the truth; Pearson correlation of
the 8 x 8-pooled output with the coarse input (all cells and frames, averaged over members);
the absolute error of the 99th percentile of all cells and frames (averaged over members); the
CRPS of the 16-member ensemble averaged over cells and frames (bicubic: its absolute error).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import radar_data
from _machine import cpu_model

import xdownscale
from xdownscale import metrics
from xdownscale.models import registry
from xdownscale.sampling import ensemble

ROOT = Path(__file__).resolve().parents[1]
FACTOR = 8


def truth_window(size: int, frames: int, validation: bool = False) -> xr.DataArray:
    """The evaluation truth; ``validation=True`` takes it from the MeteoSwiss 2016 training event."""
    if validation:
        mch = radar_data.training_sources()["mch"]
        h = mch.isel(time=np.flatnonzero((mch["time"].dt.year == 2016).values))
    else:
        h = radar_data.held_out()
    valid = np.isfinite(h).all("time").values
    best = None
    for s in range(min(valid.shape) // 8 * 8, size - 1, -8):
        for i in range(0, valid.shape[0] - s + 1, 8):
            for j in range(0, valid.shape[1] - s + 1, 8):
                if valid[i : i + s, j : j + s].all():
                    best = (s, i, j)
                    break
            if best:
                break
        if best:
            break
    s, i, j = best
    i0, j0 = i + (s - size) // 2, j + (s - size) // 2
    idx = np.linspace(0, h.sizes["time"] - 1, frames).round().astype(int)
    t = h.isel(time=idx, y=slice(i0, i0 + size), x=slice(j0, j0 + size)).load().astype(np.float32)
    t = t.drop_vars([c for c in t.coords if c not in ("time", "y", "x")])
    # y decreasing in the file: keep the grid, spacing is what matters
    t.attrs = {"units": "mm h-1", "standard_name": "lwe_precipitation_rate"}
    return t.clip(min=0)


def rainfarm(coarse: xr.DataArray, n: int) -> xr.DataArray:
    from pysteps.downscaling.rainfarm import downscale

    out = np.empty((n, coarse.sizes["time"], coarse.sizes["y"] * FACTOR, coarse.sizes["x"] * FACTOR), np.float32)
    for m in range(n):
        for t in range(coarse.sizes["time"]):
            np.random.seed(m)  # noqa: NPY002  (pysteps draws from the global numpy state)
            out[m, t] = downscale(coarse.values[t].astype(float), ds_factor=FACTOR)
    return out


def scores(gen: xr.DataArray, truth: xr.DataArray, coarse: xr.DataArray, ens: bool) -> dict[str, float]:
    res = {
        "melr_unweighted": float(metrics.melr(gen, truth, dim="time")),
        "melr_weighted": float(metrics.melr(gen, truth, dim="time", weighted=True)),
    }
    c = coarse.assign_coords(y=np.arange(coarse.sizes["y"]), x=np.arange(coarse.sizes["x"]))
    g = gen.assign_coords(y=np.arange(gen.sizes["y"]), x=np.arange(gen.sizes["x"]))
    corr = metrics.pooled_correlation(g, c, factor=FACTOR, dim=["time", "y", "x"])
    res["pooled_correlation"] = float(corr.mean())
    q_true = float(np.quantile(truth.values, 0.99))
    if "realization" in gen.dims:
        q_gen = np.array([np.quantile(gen.isel(realization=m).values, 0.99) for m in range(gen.sizes["realization"])])
    else:
        q_gen = np.array([np.quantile(gen.values, 0.99)])
    res["p99_abs_error"] = float(np.mean(np.abs(q_gen - q_true)))
    res["p99_truth"] = q_true
    if ens:
        res["crps"] = float(metrics.crps(gen, truth).mean())
    else:
        res["crps"] = float(np.abs(gen - truth).mean())  # CRPS of a deterministic forecast = MAE
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="/tmp/xds_radar/radar-8x.pt")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 frames, 4 members, 128 km window")
    ap.add_argument("--conserve", default="auto", choices=["auto", "none", "multiplicative", "additive"],
                    help="sample(conserve=...): keep the 8 km block means (auto: multiplicative)")
    ap.add_argument("--scale", default="auto", help="'auto' or a fixed sigma* for the model")
    ap.add_argument("--validate", default=None,
                    help="comma-separated sigma* values (and/or 'auto') to compare on the MeteoSwiss "
                         "2016 *training* event (never the held-out one); prints a table and exits")
    ap.add_argument("--install", action="store_true",
                    help="write the card with these metrics into xdownscale/models/weights and registry.json")
    ap.add_argument("--version", default="2", help="version of the installed weights (<name>-v<version>.pt)")
    ap.add_argument("--name", default=None,
                    help="registry name to install as (default: the default model, radar-8x)")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "_static" / "radar-model_example.png"))
    ap.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks" / "radar_model_results.inc"))
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.frames, args.members = 128, 2, 4
    torch.set_num_threads(args.threads)
    model = xdownscale.models.load(args.weights)
    if args.validate:
        return validate(model, args)
    truth = truth_window(args.size, args.frames)
    coarse = xdownscale.coarsen(truth, FACTOR)
    coarse.attrs["units"] = "mm h-1"
    print(f"truth {dict(truth.sizes)}, mean {float(truth.mean()):.3f} mm/h, wet (>0.1) "
          f"{float((truth > 0.1).mean()):.2f}; coarse {dict(coarse.sizes)}", flush=True)
    results, timing = {}, {}
    t0 = time.perf_counter()
    bic = xdownscale.upsample(coarse, FACTOR, interpolation="bicubic").clip(min=0)
    bic = bic.assign_coords(y=truth.y.values, x=truth.x.values)
    timing["bicubic"] = time.perf_counter() - t0
    results["bicubic"] = scores(bic, truth, coarse, ens=False)
    t0 = time.perf_counter()
    rf = xr.DataArray(rainfarm(coarse, args.members), dims=("realization", *truth.dims), coords=truth.coords)
    timing["rainfarm"] = time.perf_counter() - t0
    results["rainfarm"] = scores(rf, truth, coarse, ens=True)
    print("baselines", json.dumps(results, indent=1), flush=True)
    t0 = time.perf_counter()
    choice = xdownscale.choose_scale(
        model.card.forward_transform(xdownscale.lowpass(xdownscale.upsample(coarse, FACTOR), 0.5 / FACTOR)),
        xr.DataArray(model.card.target_psd, dims="wavenumber",
                     coords={"wavenumber": model.card.target_psd_wavenumber}), nan_policy="fill",
        match_below=0.25 / FACTOR, k_max=0.5 / FACTOR,  # what sample(scale="auto") does
    )
    scale = "auto" if args.scale == "auto" else float(args.scale)
    ens = ensemble(coarse, args.members, model, sampler="heun", steps=args.steps, scale=scale,
                   seed=0, device="cpu", batch_size=8, conserve=args.conserve)
    ens = ens.assign_coords(y=truth.y.values, x=truth.x.values)
    timing["model"] = time.perf_counter() - t0
    results["model"] = scores(ens, truth, coarse, ens=True)
    results["model"]["sigma_star"] = float(choice.sigma_star) if scale == "auto" else scale
    print("model", json.dumps(results["model"], indent=1), f"{timing['model']:.0f} s", flush=True)
    b, r, m = results["bicubic"], results["rainfarm"], results["model"]
    targets = {
        "MELR unweighted <= bicubic/3": (m["melr_unweighted"], b["melr_unweighted"] / 3),
        "MELR unweighted < RainFARM": (m["melr_unweighted"], r["melr_unweighted"]),
        "MELR weighted < bicubic": (m["melr_weighted"], b["melr_weighted"]),
        "MELR weighted < RainFARM": (m["melr_weighted"], r["melr_weighted"]),
        "pooled correlation >= 0.95": (0.95, m["pooled_correlation"]),
        "CRPS < RainFARM": (m["crps"], r["crps"]),
    }
    met = {k: bool(a <= lim) for k, (a, lim) in targets.items()}
    for k, ok in met.items():
        print(f"{'MET ' if ok else 'MISS'} {k}: {targets[k][0]:.4g} vs {targets[k][1]:.4g}")
    protocol = (f"held-out MeteoSwiss 2017-01-31, {args.frames} frames, {args.size}x{args.size} km window, "
                f"coarse = 8x8 block mean; {args.members} members; EDM Heun {args.steps} steps from "
                f"sigma* = {m['sigma_star']:.3g} (scale={scale!r}), conserve={args.conserve!r}")
    _write_docs(Path(args.docs), results, met, timing, protocol, model, args)
    if not args.quick:
        _figure(Path(args.figure), truth, coarse, bic, rf, ens, args.name or registry.DEFAULT_MODEL)
    if args.install and not args.quick:
        from _install import install

        install(args.weights, args.name or registry.DEFAULT_MODEL, args.version, metrics={
            "protocol": protocol,
            **{f"{meth}.{k}": round(v, 4) for meth, d in results.items() for k, v in d.items()},
        })
    return 0


def validate(model, args) -> int:
    """Compare sigma* values on the MeteoSwiss 2016 training event (validation, not held out)."""
    truth = truth_window(args.size, args.frames, validation=True)
    coarse = xdownscale.coarsen(truth, FACTOR)
    coarse.attrs["units"] = "mm h-1"
    print(f"validation truth {dict(truth.sizes)}, mean {float(truth.mean()):.3f} mm/h")
    bic = xdownscale.upsample(coarse, FACTOR, interpolation="bicubic").clip(min=0).assign_coords(y=truth.y.values, x=truth.x.values)
    print("bicubic", json.dumps({k: round(v, 4) for k, v in scores(bic, truth, coarse, ens=False).items()}))
    for value in args.validate.split(","):
        scale = "auto" if value == "auto" else float(value)
        ens = ensemble(coarse, args.members, model, sampler="heun", steps=args.steps, scale=scale,
                       seed=0, device="cpu", batch_size=8, conserve=args.conserve).assign_coords(y=truth.y.values, x=truth.x.values)
        sc = scores(ens, truth, coarse, ens=True)
        print(f"scale={value}", json.dumps({k: round(v, 4) for k, v in sc.items()}), flush=True)
    return 0


def _figure(path: Path, truth, coarse, bic, rf, ens, label: str = "radar-8x") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = int(np.argmax(truth.mean(("y", "x")).values))  # the wettest frame
    panels = [("truth (1 km)", truth[t]), ("coarse input (8 km)", coarse[t]),
              ("bicubic", bic[t]), ("RainFARM (member 0)", rf[0, t]), (f"{label} (member 0)", ens[0, t]),
              (f"{label} (member 1)", ens[1, t])]
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.2), layout="constrained")
    vmax = float(np.quantile(truth[t].values, 0.995))
    for ax, (title, f) in zip(axes.ravel()[:6], panels, strict=True):
        im = ax.imshow(np.asarray(f.values), vmin=0, vmax=vmax, cmap="viridis", interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes.ravel()[:6].tolist(), shrink=0.6, label="mm/h")
    ax = axes.ravel()[6]
    for name, f in (("truth", truth), ("bicubic", bic), ("RainFARM", rf), (label, ens)):
        p = xdownscale.psd(f)
        ax.loglog(p["wavenumber"][1:], p[1:], label=name)
    ax.axvline(0.5 / FACTOR, color="k", lw=0.5, ls=":")
    ax.set_xlabel("wavenumber (cycles per km)")
    ax.set_ylabel("PSD (mm/h)^2")
    ax.legend(fontsize=8)
    ax.set_title("spectra (all frames)")
    ax = axes.ravel()[7]
    bins = np.logspace(-2, 2, 41)
    for name, f in (("truth", truth), ("bicubic", bic), ("RainFARM", rf), (label, ens)):
        ax.hist(np.asarray(f.values).ravel(), bins=bins, histtype="step", density=True, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mm/h")
    ax.set_title("distribution of cell values")
    fig.suptitle("Held-out MeteoSwiss 2017-01-31: 8x downscaling of 8x8 block means")
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def _write_docs(path: Path, results, met, timing, protocol, model, args) -> None:
    rows = [("MELR unweighted", "melr_unweighted", "{:.3f}"), ("MELR weighted", "melr_weighted", "{:.3f}"),
            ("pooled correlation", "pooled_correlation", "{:.3f}"),
            ("abs. error of the 99th percentile (mm/h)", "p99_abs_error", "{:.3f}"),
            ("CRPS (mm/h)", "crps", "{:.4f}")]
    lines = [".. list-table:: Held-out event, same coarse inputs for every method", "   :header-rows: 1", "",
             "   * - metric", "     - bicubic", "     - RainFARM", f"     - {args.name or registry.DEFAULT_MODEL} model"]
    for label, key, fmt in rows:
        lines += [f"   * - {label}"] + [f"     - {fmt.format(results[m][key])}" for m in ("bicubic", "rainfarm", "model")]
    lines += ["", "Targets:", ""]
    lines += [f"- {'met' if ok else '**missed**'}: {k}" for k, ok in met.items()]
    cpu = cpu_model()
    lines += ["", f"Protocol: {protocol}. 99th percentile of the truth: {results['model']['p99_truth']:.2f} mm/h.",
              "", f"Wall time on {cpu} ({args.threads} torch thread{'s' if args.threads > 1 else ''}, shared machine): bicubic "
              f"{timing['bicubic']:.2f} s, RainFARM {timing['rainfarm']:.1f} s, model {timing['model']:.0f} s. "
              f"torch {torch.__version__}, Python {platform.python_version()}.", "",
              f"Model: sha256 of the evaluated file {model.card.sha256}.", "",
              "Command::", "", "    python benchmarks/eval_radar.py " + " ".join(
                  a for a in sys.argv[1:] if a != "--install"), ""]
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
