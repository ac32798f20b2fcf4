"""Every verb on a dask.distributed cluster of worker processes, with no extra call."""

from __future__ import annotations

import os
import pickle
import signal
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale as xd

distributed = pytest.importorskip("distributed")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # port and resource warnings of a local test cluster
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _tiny(seed=0, channels=(8, 16)):
    from xdownscale.nn import DownscalingModel, EDMDenoiser, UNet

    torch.manual_seed(seed)
    net = UNet(channels=channels, attention=False)
    card = {
        "name": "tiny",
        "units": "mm h-1",
        "transform": "log",
        "scale_min": 0.0,
        "scale_max": 4.0,
        "factors": (4,),
        "extra": {"network": {"class": "UNet", "config": net.config}},
    }
    return DownscalingModel(EDMDenoiser(net, sigma_max=5.0), card)


def _coarse(rng, n=6):
    data = rng.gamma(0.8, 1.5, (n, 6, 5)).astype("float32")
    return xr.DataArray(data, dims=("time", "y", "x"), attrs={"units": "mm h-1"}, name="pr")


def _no_history(obj):
    out = obj.copy()
    out.attrs = {k: v for k, v in obj.attrs.items() if k != "history"}
    return out


def _threaded(obj):
    import dask

    with dask.config.set(scheduler="threads"):
        return obj.compute()


def _on_cluster(client, obj):
    return client.compute(obj).result()


def test_sample_with_an_in_memory_model_needs_no_extra_call(client, rng):
    model = _tiny()
    da = _coarse(rng).chunk(time=2)
    lazy = da.downscale.sample(model, scale=0.5, steps=2, seed=5, device="cpu")
    got = _on_cluster(client, lazy)
    want = _threaded(da.downscale.sample(model, scale=0.5, steps=2, seed=5, device="cpu"))
    np.testing.assert_array_equal(got.values, want.values)
    plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
    assert all(f"xdownscale-model-{model.token}" in p for p in plugins.values())


def test_a_weight_file_is_loaded_once_per_worker(client, rng, tmp_path):
    from xdownscale.models import load, save

    path = tmp_path / "tiny.pt"
    save(_tiny(seed=1), path)
    model = load(path)
    da = _coarse(rng, n=8).chunk(time=1)
    kw = {"scale": 0.5, "steps": 2, "seed": 1, "device": "cpu"}
    got = _on_cluster(client, da.downscale.sample(str(path), **kw))
    want = _threaded(da.downscale.sample(model, **kw))
    np.testing.assert_array_equal(got.values, want.values)
    loads = client.run(lambda: __import__("xdownscale.nn.model").nn.model.cache_info())
    counts = [info.get(model.token, 0) for info in loads.values()]
    assert max(counts) == 1 and sum(counts) >= 1  # 8 tasks, at most one load per worker


def test_the_default_model_by_name(client):
    pr = xd.datasets.open_sample().isel(time=slice(0, 2))
    coarse = xd.coarsen(pr, 8).chunk(time=1)
    kw = {"steps": 1, "seed": 3}
    got = _on_cluster(client, coarse.downscale.sample("radar-8x", **kw))
    want = _threaded(coarse.downscale.sample(**kw))
    np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.parametrize("reduce", [None, ["mean", "std", "exceedance", "quantile"]])
def test_ensemble_is_identical_to_the_threaded_scheduler(client, rng, reduce):
    model = _tiny(seed=2)
    da = _coarse(rng).chunk(time=3)
    kw = {"scale": 0.5, "steps": 2, "seed": 9, "device": "cpu", "member_chunk": 2}
    if reduce is not None:
        kw = {**kw, "reduce": reduce, "threshold": 1.0, "q": 0.5}
        del kw["member_chunk"]
    got = _on_cluster(client, da.downscale.ensemble(5, model, **kw))
    want = _threaded(da.downscale.ensemble(5, model, **kw))
    xr.testing.assert_identical(_no_history(got), _no_history(want))


def test_qdm_and_debias_are_identical_to_the_threaded_scheduler(client, rng):
    t = pd.date_range("2000-01-01", periods=730)

    def series(mu):
        data = rng.normal(mu, 1.0, (730, 3, 4))
        return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": t}, attrs={"units": "K"})

    sim, ref, hist = series(2.0), series(1.0), series(0.0)
    q = xd.qdm(sim.chunk(y=1), ref.chunk(y=1), hist, group="time.month", interp="linear")
    np.testing.assert_array_equal(_on_cluster(client, q).values, _threaded(q).values)
    d = xd.debias(sim.chunk(time=100), ref, hist, reg=0.01)
    np.testing.assert_array_equal(_on_cluster(client, d).values, _threaded(d).values)


def test_graph_does_not_grow_with_the_models_size(client, rng):
    da = _coarse(rng).chunk(time=2)
    sizes = []
    for channels in ((8,), (64, 128, 128)):  # 1.9 k and 1.2 M parameters
        lazy = da.downscale.sample(_tiny(channels=channels), scale=0.5, steps=1, device="cpu")
        sizes.append(len(pickle.dumps(dict(lazy.data.__dask_graph__()))))
    assert sizes[1] < 1.05 * sizes[0] and sizes[1] < 200_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Sending large graph" warning
        _on_cluster(client, lazy)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(client, rng):
    model = _tiny(seed=4)
    da = _coarse(rng, n=12).chunk(time=1)
    kw = {"scale": 0.5, "steps": 6, "seed": 2, "device": "cpu"}
    want = _threaded(da.downscale.ensemble(3, model, **kw))
    future = client.compute(da.downscale.ensemble(3, model, **kw))
    deadline = time.time() + 60
    while time.time() < deadline:  # let the run start, then kill a busy worker
        processing = client.processing()
        if any(processing.values()):
            break
        time.sleep(0.05)
    victim = next(a for a, tasks in client.processing().items() if tasks)
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # the worker process dies in the middle of its tasks
    got = future.result(timeout=300)
    np.testing.assert_array_equal(got.values, want.values)
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it


def test_progress_under_a_client_persists_on_the_cluster(client, rng):
    model = _tiny(seed=6)
    da = _coarse(rng).chunk(time=2)
    out = da.downscale.sample(model, scale=0.5, steps=1, device="cpu", progress=True)
    assert out.chunks is not None  # persisted, not pulled to the client
    want = _threaded(da.downscale.sample(model, scale=0.5, steps=1, device="cpu"))
    np.testing.assert_array_equal(out.compute().values, want.values)
