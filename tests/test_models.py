"""Tests of xdownscale.models: file format, safe loading, registry, fetching over loopback."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import xdownscale.models as zoo
from xdownscale.models import io as zio
from xdownscale.models import registry
from xdownscale.models.card import REQUIRED_EXTRA, ModelCard
from xdownscale.nn import DownscalingModel, EDMDenoiser, UNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- helpers


def tiny_model(seed: int = 0, name: str = "tiny") -> DownscalingModel:
    torch.manual_seed(seed)
    net = UNet(channels=(8,), attention=False)
    card = ModelCard(
        name=name,
        units="mm h-1",
        transform="log",
        scale_min=0.0,
        scale_max=10.0,
        factors=(4,),
        extra={
            "version": "1",
            "description": "a <tiny> test model",
            "licence": "CC0",
            "network": {"class": "UNet", "config": net.config},
            "training": {"steps": 0},
        },
    )
    return DownscalingModel(EDMDenoiser(net, sigma_max=5.0), card)


@pytest.fixture
def weight_file(tmp_path) -> tuple[Path, str]:
    path = tmp_path / "src" / "tiny-v1.pt"
    sha = zio.save(tiny_model(), path)
    return path, sha


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        time.sleep(self.server.delay)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) serving tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
    )
    httpd.hits, httpd.delay, httpd.root = [], 0.0, root
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def zoo_env(monkeypatch, tmp_path, server, weight_file):
    """Register 'tiny-test' (a download) served by the loopback server; a fresh cache."""
    path, sha = weight_file
    (server.root / path.name).write_bytes(path.read_bytes())
    entry = registry.Entry(name="tiny-test", file=path.name, sha256=sha, version="1")
    monkeypatch.setitem(registry.REGISTRY, "tiny-test", entry)
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDOWNSCALE_CACHE", str(cache))
    monkeypatch.setenv("XDOWNSCALE_BASE_URL", server.url.rstrip("/"))  # trailing / added
    monkeypatch.setenv("XDOWNSCALE_RETRIES", "0")
    return entry, cache, server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- file format


def test_save_load_round_trip(weight_file):
    path, sha = weight_file
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    m = zoo.load(path)
    assert isinstance(m, DownscalingModel) and isinstance(m.card, ModelCard)
    assert m.card.sha256 == sha and m.token == f"sha256:{sha}"
    ref = tiny_model()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(m.denoiser(x, 0.7), ref.denoiser.eval()(x, 0.7), rtol=0, atol=0)
    assert m.card.description == "a <tiny> test model" and m.card.factors == (4,)
    assert m.card.scale_max == 10.0 and m.card.transform == "log"


def test_save_refuses_existing_and_package_dir(weight_file):
    path, _ = weight_file
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        zio.save(tiny_model(), path)
    with pytest.raises(ValueError, match="inside the installed xdownscale package"):
        zio.save(tiny_model(), registry.WEIGHTS_DIR / "mine.pt")
    assert not (registry.WEIGHTS_DIR / "mine.pt").exists()


def test_save_refuses_card_without_network(tmp_path):
    m = tiny_model()
    m.card.extra["network"] = {
        "class": "UNet",
        "config": UNet(channels=(16,), attention=False).config,
    }
    with pytest.raises(ValueError, match="does not match the model's weights"):
        zio.save(m, tmp_path / "x.pt")
    del m.card.extra["network"]
    with pytest.raises(ValueError, match="no usable network description"):
        zio.save(m, tmp_path / "x.pt")


def test_load_path_with_wrong_sha256_is_refused(weight_file):
    path, sha = weight_file
    with pytest.raises(ValueError, match=f"sha256 of .* is {sha}, expected 00ff"):
        zoo.load(path, sha256="00ff")
    assert zoo.load(path, sha256="sha256:" + sha).card.sha256 == sha


def test_truncated_file_is_corrupt(weight_file, tmp_path):
    path, _ = weight_file
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ValueError, match="corrupt or not an xdownscale weight file"):
        zoo.load(bad)


def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt' is empty \(0 bytes\): not a weight file"):
        zoo.load(empty)


def _flip_a_weight(path, out):
    """A copy of ``path`` with one weight changed: still a loadable torch file."""
    blob = torch.load(path, weights_only=True)
    name = sorted(blob["state_dict"])[3]
    blob["state_dict"][name] = blob["state_dict"][name] + 0.5
    torch.save(blob, out)
    return name


def test_damaged_tensors_are_refused_even_by_path(weight_file, tmp_path):
    path, _ = weight_file
    bad = tmp_path / "damaged.pt"
    _flip_a_weight(path, bad)
    with pytest.raises(
        ValueError,
        match=r"the tensors in .*damaged.pt' do not match the hash in its card .*corrupt; it was not loaded",
    ):
        zoo.load(bad)
    card = zoo.describe(path)
    assert card.extra["tensors_sha256"] == zio.tensors_sha256(
        torch.load(path, weights_only=True)["state_dict"]
    )


def test_a_file_without_a_tensor_hash_needs_its_file_hash(weight_file, tmp_path):
    path, _ = weight_file
    blob = torch.load(path, weights_only=True)
    card = ModelCard.from_json(blob["card"])
    del card.extra["tensors_sha256"]
    blob["card"] = card.to_json()
    old = tmp_path / "old.pt"
    torch.save(blob, old)
    with pytest.raises(
        ValueError, match=r"carries no hash of its tensors .*pass the file's known sha256="
    ):
        zoo.load(old)
    sha = zio.file_sha256(old)
    assert zoo.load(old, sha256=sha).card.sha256 == sha


def test_embedded_weights_carry_their_tensor_hash():
    for name in registry.list_models():
        assert "tensors_sha256" in zoo.describe(name).extra


def test_other_torch_file_is_refused(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"weight": torch.zeros(3)}, p)
    with pytest.raises(ValueError, match="is not an xdownscale weight file"):
        zoo.load(p)
    blob = torch.load(p, weights_only=True)
    torch.save({"format": zio.FORMAT, "format_version": 99, "card": "{}", "state_dict": blob}, p)
    with pytest.raises(ValueError, match="format version 99"):
        zoo.load(p)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        # executed by an unrestricted unpickler: creates the marker file
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_that_would_execute_code_is_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if how == "pickle":
        path.write_bytes(pickle.dumps(_Evil(str(marker))))
    else:
        torch.save(
            {
                "format": zio.FORMAT,
                "format_version": 1,
                "card": _Evil(str(marker)),
                "state_dict": {},
            },
            path,
        )
    with pytest.raises(ValueError, match=r"refused to load .*could run code") as info:
        zoo.load(path)
    assert "weights_only" not in str(info.value)  # never advise turning the protection off
    with pytest.raises(ValueError, match="refused to load"):
        zoo.describe(path)
    assert not marker.exists()
    # the oracle: the same bytes do run code when unpickled without restriction
    if how == "pickle":
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_output_range_bounds_the_denoiser(tmp_path):
    m = tiny_model()
    m.card.extra["output_range"] = [-1.0, 1.0]
    zio.save(m, tmp_path / "b.pt")
    loaded = zoo.load(tmp_path / "b.pt")
    assert isinstance(loaded.denoiser, zio.BoundedDenoiser)
    x = torch.full((1, 1, 8, 8), 40.0)
    with torch.no_grad():
        assert float(loaded.denoiser(x, 0.01).max()) == 1.0
        assert float(m.denoiser.eval()(x, 0.01).max()) > 1.0  # the raw network overshoots
    zio.save(loaded, tmp_path / "again.pt")  # saving unwraps: same state dict, same card
    assert zoo.load(tmp_path / "again.pt").card.extra["output_range"] == [-1.0, 1.0]
    m.card.extra["output_range"] = [1.0, -1.0]
    zio.save(m, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="low < high"):
        zoo.load(tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- card


def test_card_reprs_and_json_round_trip(weight_file):
    card = zoo.describe(weight_file[0])
    text = repr(card)
    assert text.splitlines()[0] == "ModelCard 'tiny' v1: a <tiny> test model"
    assert "mm h-1" in text and "log(x + 0.0001)" in text and card.sha256 in text
    html = card._repr_html_()
    assert "&lt;tiny&gt;" in html and "<table>" in html
    again = ModelCard.from_json(card.to_json())
    assert again == card
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelCard.from_json("{nope")


# ----------------------------------------------------------------------------- registry


def test_unknown_name_lists_registered_models():
    with pytest.raises(ValueError, match=r"unknown model 'nope'; registered models: .*radar-8x"):
        zoo.load("nope")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        zoo.fetch("nope")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.describe("nope")
    with pytest.raises(TypeError, match="got int"):
        zoo.load(3)


def test_cache_dir_and_base_url_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDOWNSCALE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDOWNSCALE_BASE_URL", "https://mirror.example/w")
    assert zoo.cache_dir() == tmp_path / "c" and zoo.base_url() == "https://mirror.example/w/"
    monkeypatch.delenv("XDOWNSCALE_CACHE")
    monkeypatch.delenv("XDOWNSCALE_BASE_URL")
    assert zoo.base_url() == registry.DEFAULT_BASE_URL
    assert "xdownscale" in str(zoo.cache_dir())
    monkeypatch.setenv("XDOWNSCALE_RETRIES", "-1")
    with pytest.raises(ValueError, match="XDOWNSCALE_RETRIES='-1' must be an integer >= 0"):
        registry._retries()


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert registry._progressbar() is False


def test_passthrough_of_in_memory_model():
    m = tiny_model()
    assert zoo.load(m) is m


# ----------------------------------------------------------------------------- embedded default


def test_embedded_default_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("networking is disabled in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    m = zoo.load()
    entry = registry.REGISTRY[zoo.DEFAULT_MODEL]
    assert entry.embedded and m.card.name == zoo.DEFAULT_MODEL
    assert m.card.sha256 == entry.sha256
    assert zoo.fetch(zoo.DEFAULT_MODEL).parent == registry.WEIGHTS_DIR
    # a complete card: everything sampling and a reader need
    card = m.card
    assert all(k in card.extra for k in REQUIRED_EXTRA)
    assert card.units == "mm h-1" and card.transform == "log" and card.factors == (8,)
    assert card.pixel_size == 1000.0 and card.target_psd and card.scale_max > card.scale_min
    assert card.parameterisation == m.denoiser.parameterisation
    assert os.path.getsize(zoo.fetch(zoo.DEFAULT_MODEL)) < 5 * 2**20


@pytest.mark.parametrize("name", ["radar-8x-cm", "kolmogorov-8x"])
def test_other_embedded_models_load_offline_with_complete_cards(monkeypatch, name):
    def no_network(*args, **kwargs):
        raise OSError("networking is disabled in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    entry = registry.REGISTRY[name]
    m = zoo.load(name)
    assert entry.embedded and m.card.name == name and m.card.sha256 == entry.sha256
    assert all(k in m.card.extra for k in REQUIRED_EXTRA) and m.card.target_psd
    assert m.card.factors == (8,) and os.path.getsize(zoo.fetch(name)) < 5 * 2**20
    if name == "radar-8x-cm":
        assert m.parameterisation == "consistency" and m.card.transform == "log"
    else:  # doubly periodic vorticity model, trained without flips
        cfg = m.card.network["config"]
        assert cfg["periodic_x"] and cfg["periodic_y"] and m.card.transform == "identity"
        assert "flips" not in m.card.training["augmentation"]


def test_kolmogorov_model_downscales_with_exact_block_means():
    from xdownscale.datasets.kolmogorov import kolmogorov_flow_lowfi
    from xdownscale.sampling import sample

    coarse = kolmogorov_flow_lowfi(1, n_trajectories=2, spinup=1.0, seed=0)
    out = sample(coarse, "kolmogorov-8x", sampler="conditional", steps=4, device="cpu")
    assert out.shape == (2, 64, 64) and bool(np.isfinite(out).all())
    import xdownscale

    back = xdownscale.coarsen(out.astype("float64"), 8)
    np.testing.assert_allclose(back.values, coarse.values, atol=1e-5)


def test_default_model_downscales_a_field():
    from xdownscale.sampling import sample

    rng = np.random.default_rng(0)
    c = (np.arange(4) + 0.5) * 8000.0
    coarse = xr.DataArray(
        rng.gamma(0.5, 2.0, size=(1, 4, 4)),
        dims=("time", "y", "x"),
        coords={"y": ("y", c, {"units": "m"}), "x": ("x", c, {"units": "m"})},
        attrs={"units": "mm h-1"},
    )
    out = sample(coarse, zoo.load(), scale=0.5, steps=2, device="cpu")
    assert out.shape == (1, 32, 32) and out.attrs["units"] == "mm h-1"
    assert bool((out >= 0).all()) and zoo.load().card.sha256 in out.attrs["history"]


# ----------------------------------------------------------------------------- downloads


@pytest.mark.network
def test_download_hash_check_and_cache_hit(zoo_env):
    entry, cache, server = zoo_env
    m = zoo.load("tiny-test")
    assert m.card.sha256 == entry.sha256
    assert (cache / entry.file).is_file()
    assert server.hits == [f"/{entry.file}"]
    m2 = zoo.load("tiny-test")  # cache hit: no second download
    assert server.hits == [f"/{entry.file}"] and m2.card.sha256 == entry.sha256
    assert zoo.describe("tiny-test").description == "a <tiny> test model"
    assert len(server.hits) == 1


@pytest.mark.network
def test_corrupt_download_is_rejected_and_not_cached(zoo_env):
    entry, cache, server = zoo_env
    served = server.root / entry.file
    served.write_bytes(served.read_bytes()[:-100] + b"x" * 100)
    with pytest.raises(
        ValueError, match=r"does not have the registered sha256 .*rejected and not kept"
    ):
        zoo.load("tiny-test")
    assert not (cache / entry.file).exists()
    assert not [p for p in cache.iterdir()] if cache.exists() else True


@pytest.mark.network
def test_corrupted_cache_entry_is_downloaded_again(zoo_env):
    entry, cache, server = zoo_env
    zoo.fetch("tiny-test")
    (cache / entry.file).write_bytes(b"garbage")
    assert zoo.load("tiny-test").card.sha256 == entry.sha256
    assert len(server.hits) == 2


@pytest.mark.network
def test_server_down_says_how_to_work_offline(zoo_env, monkeypatch):
    monkeypatch.setenv("XDOWNSCALE_BASE_URL", f"http://127.0.0.1:{_free_port()}/")
    with pytest.raises(ConnectionError, match="could not download model 'tiny-test'") as info:
        zoo.load("tiny-test")
    msg = str(info.value)
    for hint in (
        "XDOWNSCALE_CACHE",
        "xdownscale fetch --all",
        "load('/path/to/tiny-v1.pt')",
        "XDOWNSCALE_BASE_URL",
    ):
        assert hint in msg


@pytest.mark.network
@pytest.mark.slow
def test_two_processes_fetching_at_once(zoo_env):
    entry, cache, server = zoo_env
    server.delay = 0.5  # both requests are in flight at the same time
    code = textwrap.dedent(f"""
        from xdownscale.models import registry, load
        registry.REGISTRY["tiny-test"] = registry.Entry(
            name="tiny-test", file={entry.file!r}, sha256={entry.sha256!r})
        print(load("tiny-test").card.sha256)
    """)
    env = {**os.environ}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == entry.sha256
    # each process either downloaded the file or found the other's complete copy in the cache
    # (how the two interleave depends on the machine's load); neither saw a half-written file
    assert 1 <= len(server.hits) <= 2
    assert [q.name for q in cache.iterdir()] == [entry.file]
    assert zio.file_sha256(cache / entry.file) == entry.sha256


@pytest.mark.network
def test_cli_fetch_all_and_list(zoo_env, capsys):
    from xdownscale.models.__main__ import main

    entry, cache, _ = zoo_env
    assert main(["fetch", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"tiny-test: {cache / entry.file}" in out and "radar-8x:" in out
    assert main(["list"]) == 0
    assert "tiny-test" in capsys.readouterr().out
    assert main(["describe", "tiny-test"]) == 0
    assert "ModelCard 'tiny' v1" in capsys.readouterr().out
    assert main(["fetch"]) == 2
    err = capsys.readouterr().err
    assert "fetch: name the models to fetch, or pass --all" in err and "Traceback" not in err
