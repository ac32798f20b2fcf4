"""Tests of xdownscale.train (and its torch core xdownscale.models.trainer)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import xdownscale.models as zoo
from xdownscale.cli import main as cli_main
from xdownscale.nn import training as trainer
from xdownscale.train import train

TINY = dict(batch_size=4, crop=16, channels=(8,), progress=False, device="cpu", lr=2e-3)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny networks gain nothing from more, and the CI box is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def with_zeros(rng, **kw) -> xr.DataArray:
    """:func:`fields` with dry cells (0), like precipitation: the log transform's floor."""
    return (fields(rng, **kw) - 0.5).clip(min=0)


def fields(rng, n=6, size=24, nan_block=False) -> xr.DataArray:
    """Smooth positive random fields (gamma noise, box-blurred) on a 1 km grid."""
    a = rng.gamma(0.6, 2.0, size=(n, size + 4, size + 4))
    a = sum(a[:, i : i + size, j : j + size] for i in range(5) for j in range(5)) / 25
    if nan_block:
        a[:, :4, :] = np.nan  # e.g. outside radar coverage
    c = (np.arange(size) + 0.5) * 1000.0
    return xr.DataArray(
        a,
        dims=("time", "y", "x"),
        name="pr",
        coords={"y": ("y", c, {"units": "m"}), "x": ("x", c, {"units": "m"})},
        attrs={"units": "mm h-1", "standard_name": "lwe_precipitation_rate"},
    )


@pytest.mark.training
def test_tiny_training_lowers_the_loss_and_loads_through_the_registry(rng, tmp_path):
    out = tmp_path / "mine.pt"
    da = fields(rng, nan_block=True)
    m = train(
        da,
        output=out,
        iterations=60,
        transform="log",
        factors=(4,),
        name="mine",
        card={"version": "2", "description": "test"},
        seed=1,
        **TINY,
    )
    tr = m.card.training
    assert tr["final_loss"] < 0.8 * tr["initial_loss"], tr
    loaded = zoo.load(out)
    assert loaded.card == m.card and loaded.card.sha256 == zoo.io.file_sha256(out)
    assert loaded.card.version == "2" and loaded.card.units == "mm h-1"
    assert loaded.card.pixel_size == 1000.0 and loaded.card.factors == (4,)
    logged = np.log(da.values + 1e-4) - np.log(1e-4)  # Hess et al.'s transform, then min/max
    assert loaded.card.scale_min == pytest.approx(np.nanmin(logged), rel=1e-5)
    assert loaded.card.scale_max == pytest.approx(np.nanmax(logged), rel=1e-5)
    z = loaded.card.forward_transform(da.values)
    assert loaded.card.sigma_data == pytest.approx(np.nanstd(z), rel=1e-3)
    assert len(loaded.card.target_psd) == len(loaded.card.target_psd_wavenumber) > 3
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.denoiser(x, 0.3), m.denoiser(x, 0.3))


@pytest.mark.training
def test_consistency_training_runs_and_loads(rng, tmp_path):
    out = tmp_path / "ct.pt"
    m = train(
        fields(rng),
        parameterisation="consistency",
        output=out,
        iterations=8,
        sigma_max=10.0,
        **TINY,
    )
    assert m.card.parameterisation == "consistency"
    assert math.isfinite(m.card.training["final_loss"])
    loaded = zoo.load(out)
    x = torch.rand(2, 1, 16, 16) * 1.8 - 0.9  # inside the scaled data range [-1, 1]
    # the boundary condition f(x, sigma_min) = x holds after loading
    assert loaded.card.extra["output_range"] == [-1.0, 1.0]
    torch.testing.assert_close(loaded.denoiser(x, loaded.sigma_min), x)


@pytest.mark.training
def test_resume_gives_the_same_weights_as_one_run(rng, tmp_path):
    da = fields(rng)
    ck = tmp_path / "run.ckpt"
    one = train(da, iterations=6, checkpoint=tmp_path / "one.ckpt", **TINY)
    train(da, iterations=3, checkpoint=ck, **TINY)
    two = train(da, iterations=6, checkpoint=ck, **TINY)
    assert two.card.training["steps"] == 6
    for a, b in zip(
        one.denoiser.state_dict().values(), two.denoiser.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"other options \(lr: 0.002 -> 0.001\)"):
        train(da, iterations=7, checkpoint=ck, **{**TINY, "lr": 1e-3})
    # a checkpoint from before an option existed resumes when the option keeps its default ...
    import json

    payload = torch.load(ck, weights_only=True)
    old = json.loads(payload["config"])
    del old["flips"], old["periodic_y"]
    payload["config"] = json.dumps(old)
    torch.save(payload, ck)
    assert train(da, iterations=7, checkpoint=ck, **TINY).card.training["steps"] == 7
    # ... and not when it does not
    with pytest.raises(ValueError, match=r"other options \(flips: True -> False\)"):
        train(da, iterations=8, checkpoint=ck, flips=False, **TINY)


@pytest.mark.training
def test_time_limit_stops_and_checkpoints(rng, tmp_path):
    ck = tmp_path / "t.ckpt"
    m = train(fields(rng), iterations=1000, checkpoint=ck, time_limit=0.0, **TINY)
    assert m.card.training["steps"] == 1 and m.card.training["finished"] is False
    assert ck.exists()


def test_seed_makes_training_reproducible(rng):
    da = fields(rng)
    a = train(da, iterations=2, seed=3, **TINY)
    b = train(da, iterations=2, seed=3, **TINY)
    for p, q in zip(a.denoiser.parameters(), b.denoiser.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_crop_sampler_masks_nan_and_flips():
    f = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    f[:, 0, 0] = np.nan
    s = trainer.CropSampler([f], crop=8, min_valid=0.9)
    x, mask = s(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 8, 8) and torch.isfinite(x).all()
    assert (mask.sum((1, 2, 3)) == 63).all()  # the NaN cell is masked wherever the flips put it
    assert len({tuple(torch.nonzero(m[0] == 0)[0].tolist()) for m in mask}) > 1
    with pytest.raises(ValueError, match="could not find crops"):
        trainer.CropSampler([np.full((1, 8, 8), np.nan, np.float32)], 8, 0.5)(1, torch.Generator())


def test_crop_sampler_without_flips_keeps_orientation():
    f = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    x, _ = trainer.CropSampler([f], crop=8, min_valid=0.9, flips=False)(
        12, torch.Generator().manual_seed(0)
    )
    for crop in x[:, 0].numpy():
        assert any(np.array_equal(crop, g) for g in f)


@pytest.mark.training
def test_periodic_option_reaches_the_network_and_the_card(rng):
    m = train(fields(rng), iterations=1, periodic=(True, True), flips=False, **TINY)
    cfg = m.card.network["config"]
    assert cfg["periodic_x"] is True and cfg["periodic_y"] is True and m.card.periodic_x
    assert "flips" not in m.card.training["augmentation"]
    with pytest.raises(
        ValueError, match=r"periodic='xy' is not understood; use 'auto' or \(bool, bool\)"
    ):
        train(fields(rng), iterations=1, periodic="xy", **TINY)


def test_masked_loss_ignores_nan_cells():
    # an identity "denoiser" on clean data has zero loss only where it is evaluated
    cfg = trainer.TrainConfig(sigma_data=0.5, p_mean=-1.0, p_std=0.1)
    x = torch.zeros(2, 1, 4, 4)
    mask = torch.zeros_like(x)
    mask[..., :2, :] = 1

    def perfect_on_top(xn, sigma):
        out = torch.zeros_like(xn)
        out[..., 2:, :] = 100.0  # wrong only in the masked cells
        return out

    assert (
        float(trainer.edm_loss(perfect_on_top, x, mask, torch.Generator().manual_seed(0), cfg))
        == 0.0
    )


def test_ict_schedule_matches_the_paper():
    # N(k) = min(s0 2^floor(k/K'), s1) + 1 with K' = floor(K / (log2(s1/s0) + 1)) [iCT23]
    total = 8 * 1000
    kp = math.floor(total / (math.log2(1280 / 10) + 1))
    assert kp == 1000
    assert [trainer.ict_discretisation(k, total) for k in (0, 999, 1000, 6999, 7999)] == [
        11,
        11,
        21,
        641,
        1281,
    ]
    sig = trainer.karras(1281, 0.002, 80.0)
    p = trainer.ict_index_probabilities(sig, -1.1, 2.0)
    # the discretised log-normal puts its mode near exp(P_mean) and integrates to one
    mode = float(sig[int(torch.argmax(p / torch.diff(torch.log(sig))))])
    assert abs(math.log(mode) - (-1.1)) < 0.05 and float(p.sum()) == pytest.approx(1.0)


def test_pseudo_huber_loss_value():
    # with f(x, s) = x the two noisy inputs differ by (s_hi - s_lo) z: loss = ph(|dz|)/(ds)
    cfg = trainer.TrainConfig(kind="consistency", steps=10, sigma_min=0.002, sigma_max=80.0)
    x = torch.zeros(1, 1, 4, 4)
    mask = torch.ones_like(x)
    gen = torch.Generator().manual_seed(0)
    loss = trainer.ict_loss(lambda xn, s: xn, x, mask, gen, cfg, step=0)
    gen = torch.Generator().manual_seed(0)
    sig = trainer.karras(11, 0.002, 80.0)
    i = torch.multinomial(
        trainer.ict_index_probabilities(sig, cfg.p_mean, cfg.p_std), 1, True, generator=gen
    )
    z = torch.randn(x.shape, generator=gen)
    ds = float(sig[i + 1] - sig[i])
    c = 0.00054 * 4
    expect = (math.sqrt(ds**2 * float((z**2).sum()) + c**2) - c) / ds
    assert float(loss) == pytest.approx(expect, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"parameterisation": "ddpm"}, ValueError, "parameterisation='ddpm' is not supported"),
        ({"transform": "sqrt"}, ValueError, "transform='sqrt' is not supported"),
        ({"iterations": 0}, ValueError, "iterations must be an integer >= 1"),
        ({"crop": 64}, ValueError, "at least crop=64 cells"),
        ({"min_valid": 0}, ValueError, r"min_valid must be in \(0, 1\]"),
        ({"scale_range": "minmax"}, ValueError, "scale_range='minmax' is not understood"),
    ],
)
def test_bad_options(rng, kwargs, err, match):
    with pytest.raises(err, match=match):
        train(fields(rng), **{**TINY, "iterations": 1, **kwargs})


def test_bad_input_types_and_units(rng):
    with pytest.raises(TypeError, match=r"must be an xarray\.DataArray or a non-empty sequence"):
        train(np.zeros((2, 16, 16)), **TINY)
    a, b = fields(rng), fields(rng)
    b.attrs["units"] = "kg m-2 s-1"
    with pytest.raises(ValueError, match="different units"):
        train([a, b], **TINY)
    c = fields(rng)
    c[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="infinities"):
        train(c, **TINY)


@pytest.mark.training
def test_cli_trains_and_writes_a_loadable_file(rng, tmp_path, capsys):
    nc = tmp_path / "hr.nc"
    fields(rng).to_dataset().to_netcdf(nc)
    out = tmp_path / "cli.pt"
    assert (
        cli_main(
            [
                "train",
                str(nc),
                "--var",
                "pr",
                "--output",
                str(out),
                "--iterations",
                "3",
                "--batch-size",
                "2",
                "--crop",
                "16",
                "--channels",
                "8",
                "--transform",
                "log",
                "--device",
                "cpu",
                "--factors",
                "4",
                "--isel",
                "time=0:4",
            ]
        )
        == 0
    )
    assert "sha256" in capsys.readouterr().out
    card = zoo.load(out).card
    assert card.factors == (4,) and card.transform == "log" and card.training["steps"] == 3


@pytest.mark.training
def test_init_fine_tunes_a_trained_model_in_its_own_space(rng, tmp_path):
    base_file = tmp_path / "base.pt"
    base = train(with_zeros(rng), output=base_file, iterations=40, transform="log", seed=1, **TINY)
    other = with_zeros(rng) * 0.5  # another region, mapped into the base model's space
    # one step at a negligible learning rate: the weights are the base model's
    same = train(other, init=base_file, iterations=1, seed=2, **{**TINY, "lr": 1e-12})
    for a, b in zip(
        base.denoiser.state_dict().values(), same.denoiser.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for key in ("transform", "scale_min", "scale_max", "sigma_data", "sigma_min", "sigma_max"):
        assert getattr(same.card, key) == getattr(base.card, key), key
    assert same.card.extra["network"] == base.card.extra["network"]
    assert same.card.extra["output_range"] == [-1.0, 1.0]
    assert same.card.training["init"] == {
        "name": "my-model",
        "sha256": base.card.sha256,
        "steps": 40,
    }
    tuned = train(
        other, init=base, iterations=5, seed=2, **TINY
    )  # a loaded model works as init too
    assert (
        tuned.card.training["steps"] == 5
        and tuned.card.training["init"]["sha256"] == base.card.sha256
    )
    # data the model cannot produce (beyond its clipped output range) are refused, not capped
    peak = float(base.card.inverse_transform(np.array([1.0]))[0])
    spiky = other.copy(deep=True)
    spiky[0, 5, 5] = 1000.0
    with pytest.raises(
        ValueError,
        match=r"1 cells of the fine-tuning data \(values 1000 to 1000\) lie outside the range \[0, ",
    ):
        train(spiky, init=base, iterations=1, **TINY)
    assert peak < 1000.0


def test_init_refuses_options_that_the_model_fixes(rng, tmp_path):
    base_file = tmp_path / "base.pt"
    train(fields(rng), output=base_file, iterations=1, **TINY)  # identity transform
    with pytest.raises(
        ValueError,
        match=r"channels=\(16,\) conflicts with init='my-model'.*fixes channels = \(8,\)",
    ):
        train(fields(rng), init=base_file, iterations=1, **{**TINY, "channels": (16,)})
    with pytest.raises(ValueError, match=r"transform='log' conflicts"):
        train(fields(rng), init=base_file, iterations=1, transform="log", **TINY)
    with pytest.raises(TypeError, match="init must be a registered model name"):
        train(fields(rng), init=3, iterations=1, **TINY)


@pytest.mark.training
def test_checkpoint_remembers_its_init(rng, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    data = with_zeros(rng)
    train(data, output=a, iterations=1, transform="log", seed=1, **TINY)
    train(data, output=b, iterations=1, transform="log", seed=2, **TINY)
    ck = tmp_path / "ft.ckpt"
    train(data * 0.5, init=a, iterations=2, checkpoint=ck, **TINY)
    with pytest.raises(ValueError, match=r"other options \(init: "):
        train(data * 0.5, init=b, iterations=3, checkpoint=ck, **TINY)


@pytest.mark.training
def test_cli_fine_tunes_with_init(rng, tmp_path, capsys):
    nc = tmp_path / "hr.nc"
    fields(rng).to_dataset().to_netcdf(nc)
    base = tmp_path / "base.pt"
    args = [
        str(nc),
        "--var",
        "pr",
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--crop",
        "16",
        "--device",
        "cpu",
    ]
    assert (
        cli_main(["train", *args, "--output", str(base), "--channels", "8", "--transform", "log"])
        == 0
    )
    out = tmp_path / "tuned.pt"
    assert cli_main(["train", *args, "--output", str(out), "--init", str(base)]) == 0
    card = zoo.load(out).card
    assert card.transform == "log" and card.training["init"]["sha256"] == zoo.io.file_sha256(base)
    capsys.readouterr()
    code = cli_main(["train", *args, "--output", str(out), "--init", str(base), "--channels", "16"])
    err = capsys.readouterr().err
    assert code == 2 and "--init" in err and "--channels" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # executed by an unrestricted unpickler: creates the marker file
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_that_would_run_code_is_refused_without_advising_weights_only(rng, tmp_path):
    import pickle

    marker, ck = tmp_path / "pwned", tmp_path / "evil.ckpt"
    ck.write_bytes(pickle.dumps({"format": _RunsCode(str(marker))}))
    with pytest.raises(ValueError, match=r"refused to read checkpoint .*could run code") as info:
        train(fields(rng), iterations=2, checkpoint=ck, **TINY)
    assert "weights_only" not in str(info.value) and not marker.exists()
