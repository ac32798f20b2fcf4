"""The main job: ``xdownscale demo`` runs offline on the embedded sample."""

import numpy as np
import pytest
import xarray as xr

from xdownscale import cli

from .conftest import assert_usage_error


@pytest.mark.slow
def test_demo_writes_netcdf_and_png(tmp_path, capsys):
    assert cli.main(["demo", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "xdownscale_demo.png" in out
    png = tmp_path / "xdownscale_demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    with xr.open_dataset(tmp_path / "xdownscale_demo.nc", engine="scipy") as ds:
        assert ds.precip.shape == (4, 256, 256)
        assert ds.precip_coarse.shape == (4, 32, 32)
        assert ds.precip_downscaled.shape == (4, 256, 256)
        assert float(ds.precip_downscaled.min()) >= 0
        assert 0 < ds.attrs["k_star_bicubic_vs_truth"] < 0.5 / 8
        assert "radar-8x" in ds.attrs["sampling"] and "xdownscale" in ds.attrs["history"]
        # the generative sample restores small-scale variability that interpolation lacks
        assert ds.attrs["melr_unweighted_sample"] < ds.attrs["melr_unweighted_bicubic"]
        # the coarse field is the exact block mean of the truth
        np.testing.assert_allclose(
            ds.precip_coarse.values[0, 0, 0], ds.precip.values[0, :8, :8].mean(), rtol=1e-5
        )


def test_cli_rejects_unknown_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["frobnicate"])
    assert "invalid choice" in capsys.readouterr().err


def test_models_subcommand_lists_the_default(capsys):
    assert cli.main(["models", "list"]) == 0
    assert "radar-8x" in capsys.readouterr().out


def test_train_subcommand_forwards_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_demo_takes_another_model(tmp_path):
    nc, png = cli.demo(tmp_path, steps=1, model="radar-8x-mix")
    with xr.open_dataset(nc, engine="scipy") as ds:
        assert ds.precip_downscaled.attrs["model"] == "radar-8x-mix"
        assert (
            "'radar-8x-mix'" in ds.attrs["sampling"] and "model radar-8x-mix" in ds.attrs["history"]
        )
    assert png.exists()
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        cli.demo(tmp_path, steps=1, model="nope")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--factor", "0"], "argument --factor: 0 is too small: it must be >= 2"),
        (["demo", "--steps", "-1"], "must be >= 1"),
        (["demo", "--model", "nope"], "unknown model 'nope'; registered models:"),
        (["train", "missing.nc"], "argument files: 'missing.nc' does not exist"),
        (
            ["train", "x.nc", "--channels", "a,b"],
            "'a,b' is not a comma-separated list of integers, e.g. 32,64,64",
        ),
    ],
)
def test_bad_values_exit_2_with_one_line_and_no_traceback(tmp_path, capsys, argv, message):
    (tmp_path / "x.nc").write_bytes(b"")
    argv = [a if a != "x.nc" else str(tmp_path / "x.nc") for a in argv]
    if argv[0] == "demo":
        argv += ["--output", str(tmp_path / "out")]
    assert_usage_error(argv, capsys, message)
