"""The batch command, ``xdownscale downscale``, on real radar data: output, resume, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xdownscale as xd
from xdownscale import cli
from xdownscale.batch import DONE_FILE

from .conftest import assert_usage_error, shared_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def coarse_file(tmp_path_factory):
    """8 km block means of 12 MeteoSwiss frames (128 x 128 km), as a model would give them."""
    path = shared_file("radar/mch_radar_precip_1km.nc")
    with xr.open_dataset(path) as ds:
        fine = ds.precip.isel(time=slice(100, 112), y=slice(260, 388), x=slice(380, 508)).load()
        attrs = dict(ds.attrs)
    fine = fine.astype("float32").assign_attrs(units="mm h-1")
    coarse = xd.coarsen(fine, 8).to_dataset(name="precip")
    coarse.attrs = {"title": attrs.get("title", ""), "institution": "test"}
    out = tmp_path_factory.mktemp("batch") / "coarse.nc"
    coarse.to_netcdf(out)
    return out


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "xdownscale.cli", "downscale", *args, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_writes_a_zarr_store_with_dims_coords_units_and_history(coarse_file, tmp_path, capsys):
    out = tmp_path / "fine.zarr"
    argv = ["downscale", str(coarse_file), str(out), "--var", "precip", "--steps", "1"]
    argv += ["--chunks", "time=4", "--no-progress"]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out
    assert "wrote 12 fields in 3 chunk(s)" in summary and "radar-8x" in summary
    assert "s per field" in summary and "sha256" in summary
    ds = xr.open_zarr(out)
    assert ds.precip.dims == ("time", "y", "x") and ds.precip.shape == (12, 128, 128)
    assert ds.precip.attrs["units"] == "mm h-1"
    assert "xdownscale downscale" in ds.attrs["history"] and ds.attrs["institution"] == "test"
    with xr.open_dataset(coarse_file) as c:
        np.testing.assert_allclose(np.diff(ds.y)[0] * 8, np.diff(c.y)[0])
        want = xd.sample(c.precip.load(), steps=1)
    np.testing.assert_array_equal(ds.precip.values, want.values)
    # a second run with the same settings finds everything written
    assert cli.main(argv) == 0
    assert "(3 already written, skipped)" in capsys.readouterr().out


def test_netcdf_output_and_an_ensemble_with_statistics(coarse_file, tmp_path):
    out = tmp_path / "stats.nc"
    res = _run(
        str(coarse_file),
        str(out),
        "--var",
        "precip",
        "--steps",
        "1",
        "--members",
        "3",
        "--reduce",
        "mean,std,exceedance",
        "--threshold",
        "0.5",
        "--chunks",
        "time=6",
    )
    assert res.returncode == 0, res.stderr
    with xr.open_dataset(out) as ds:
        assert set(ds.data_vars) >= {"precip_mean", "precip_std", "precip_exceedance"}
        assert ds.precip_exceedance.dims == ("threshold", "time", "y", "x")
        assert float(ds.precip_exceedance.max()) <= 1.0
    assert not (tmp_path / "stats.nc.partial.zarr").exists()


def test_an_interrupted_run_resumes_to_the_same_values(coarse_file, tmp_path):
    ref = tmp_path / "ref.zarr"
    args = ["--var", "precip", "--steps", "2", "--chunks", "time=2"]
    assert _run(str(coarse_file), str(ref), *args).returncode == 0
    out = tmp_path / "out.zarr"
    cmd = [
        sys.executable,
        "-m",
        "xdownscale.cli",
        "downscale",
        str(coarse_file),
        str(out),
        *args,
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once some, but not all, chunks are written
        done = out / DONE_FILE
        if done.exists() and 1 <= len(json.loads(done.read_text())["done"]) < 6:
            proc.kill()
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.wait()
    n_done = len(json.loads((out / DONE_FILE).read_text())["done"])
    assert 1 <= n_done < 6, "the run was not interrupted in the middle"
    res = _run(str(coarse_file), str(out), *args)
    assert res.returncode == 0, res.stderr
    assert f"({n_done} already written, skipped)" in res.stdout
    a, b = xr.open_zarr(ref).precip.values, xr.open_zarr(out).precip.values
    assert np.array_equal(a, b)


def test_a_chunk_not_recorded_as_done_is_written_again(coarse_file, tmp_path, capsys):
    out = tmp_path / "fine.zarr"
    args = [
        "downscale",
        str(coarse_file),
        str(out),
        "--var",
        "precip",
        "--steps",
        "1",
        "--chunks",
        "time=6",
        "--no-progress",
    ]
    assert cli.main(args) == 0
    good = xr.open_zarr(out).precip.values
    # a crash in the middle of the second chunk: half-written data, not recorded as done
    ds = xr.open_zarr(out).load()
    ds["precip"][6:9] = 0.0
    part = ds[["precip"]].isel(time=slice(6, 12)).drop_vars(["x", "y"])
    part.to_zarr(out, region={"time": slice(6, 12)}, zarr_format=2)
    assert not np.array_equal(xr.open_zarr(out).precip.values, good)
    (out / DONE_FILE).write_text(json.dumps({"done": [0]}))
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "(1 already written, skipped)" in capsys.readouterr().out
    np.testing.assert_array_equal(xr.open_zarr(out).precip.values, good)


def test_a_store_of_another_run_is_not_resumed(coarse_file, tmp_path, capsys):
    out = tmp_path / "fine.zarr"
    base = [
        "downscale",
        str(coarse_file),
        str(out),
        "--var",
        "precip",
        "--chunks",
        "time=6",
        "--no-progress",
    ]
    assert cli.main([*base, "--steps", "1"]) == 0
    capsys.readouterr()
    assert cli.main([*base, "--steps", "2"]) == 2
    assert "exists and was written by another run" in capsys.readouterr().err
    assert cli.main([*base, "--steps", "2", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--var", "nope"], "--var: 'nope' is not a variable of the input; it has ['precip']"),
        (["--var", "precip", "--steps", "0"], "argument --steps: 0 is too small: it must be >= 1"),
        (["--var", "precip", "--chunks", "time=x"], "argument --chunks: 'time=x' is not 'dim=N"),
        (
            ["--var", "precip", "--chunks", "level=2"],
            "--chunks: ['level'] are not dims of 'precip'",
        ),
        (["--var", "precip", "--reduce", "median"], "unknown statistic(s) ['median']"),
        (
            ["--var", "precip", "--reduce", "mean"],
            "--reduce: statistics over members need --members N",
        ),
        (
            ["--var", "precip", "--scale", "-1"],
            "argument --scale: '-1' must be a positive noise level",
        ),
        (["--var", "precip", "--model", "nope"], "unknown model 'nope'"),
        (["--var", "precip", "--qdm-hist", "x.nc"], "--qdm-hist needs --qdm-ref"),
        (["--var", "precip", "--device", "gpu"], "device='gpu' is not supported"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_traceback(
    coarse_file, tmp_path, capsys, extra, message
):
    argv = ["downscale", str(coarse_file), str(tmp_path / "o.zarr"), *extra]
    assert_usage_error(argv, capsys, message)


def test_the_command_line_entry_point_has_no_traceback_either(coarse_file, tmp_path):
    res = _run(str(coarse_file), str(tmp_path / "o.zarr"), "--var", "nope")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "xdownscale downscale: error: --var: 'nope' is not a variable of the input; it has "
        "['precip']"
    )


def test_missing_input_and_glob(coarse_file, tmp_path):
    res = _run(str(tmp_path / "none*.nc"), str(tmp_path / "o.zarr"), "--var", "precip")
    assert res.returncode == 2 and "no file matches" in res.stderr
    pattern = str(Path(coarse_file).parent / "coarse*.nc")
    res = _run(pattern, str(tmp_path / "g.zarr"), "--var", "precip", "--steps", "1")
    assert res.returncode == 0, res.stderr


def test_quantile_delta_mapping_before_downscaling(coarse_file, tmp_path):
    with xr.open_dataset(coarse_file) as c:
        biased = (c.precip * 1.5).to_dataset(name="precip")
        biased.precip.attrs["units"] = "mm h-1"
    hist = tmp_path / "hist.nc"
    biased.to_netcdf(hist)
    out = tmp_path / "q.zarr"
    res = _run(
        str(hist),
        str(out),
        "--var",
        "precip",
        "--steps",
        "1",
        "--qdm-ref",
        str(coarse_file),
        "--qdm-hist",
        str(hist),
        "--group",
        "time",
        "--qdm-kind",
        "multiplicative",
    )
    assert res.returncode == 0, res.stderr
    with xr.open_dataset(coarse_file) as c:
        got = float(xd.coarsen(xr.open_zarr(out).precip, 8).mean())
        assert got == pytest.approx(float(c.precip.mean()), rel=0.05)  # the bias is gone


def test_a_local_cluster_of_worker_processes(coarse_file, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "cl.zarr"
    res = _run(
        str(coarse_file),
        str(out),
        "--var",
        "precip",
        "--steps",
        "1",
        "--chunks",
        "time=3",
        "--workers",
        "2",
    )
    assert res.returncode == 0, res.stderr
    ref = tmp_path / "local.zarr"
    assert (
        _run(
            str(coarse_file), str(ref), "--var", "precip", "--steps", "1", "--chunks", "time=3"
        ).returncode
        == 0
    )
    assert np.array_equal(xr.open_zarr(out).precip.values, xr.open_zarr(ref).precip.values)
    assert os.path.exists(out / DONE_FILE)
