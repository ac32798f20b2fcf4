"""The in-memory model, its identity (ModelRef) and the per-process model cache."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

import xdownscale.models as zoo
from xdownscale.models import io as zio
from xdownscale.nn import DownscalingModel, GaussianDenoiser, ModelRef
from xdownscale.nn import model as nm

from .test_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_token_is_the_file_hash_or_a_random_memory_id(tmp_path):
    a, b = tiny_model(), tiny_model()
    assert a.token.startswith("mem-") and a.token != b.token and a.source is None
    sha = zio.save(a, tmp_path / "m.pt")
    loaded = zoo.load(tmp_path / "m.pt")
    assert loaded.token == f"sha256:{sha}"
    assert loaded.source == f"path:{tmp_path / 'm.pt'}"
    assert zoo.load("radar-8x").source == "registry:radar-8x"


def test_ref_is_small_and_picklable(tmp_path):
    zio.save(tiny_model(), tmp_path / "m.pt")
    ref = zoo.load(tmp_path / "m.pt").ref
    assert isinstance(ref, ModelRef) and pickle.loads(pickle.dumps(ref)) == ref
    assert len(pickle.dumps(ref)) < 500


def test_a_process_loads_a_model_from_its_source_once(tmp_path):
    """A fresh process (like a dask worker) finds path and registry models by themselves."""
    path = tmp_path / "m.pt"
    zio.save(tiny_model(), path)
    ref = zoo.load(path).ref
    code = f"""
import pickle, torch
from xdownscale.nn.model import get_model, cache_info
ref = pickle.loads({pickle.dumps(ref)!r})
m1, _ = get_model(ref, torch.device("cpu"))
m2, _ = get_model(ref, torch.device("cpu"))
reg = pickle.loads({pickle.dumps(ModelRef("sha256:" + zoo.registry.REGISTRY["radar-8x"].sha256, "registry:radar-8x"))!r})
m3, _ = get_model(reg)
print(m1 is m2, m3.card.name, sorted(cache_info().values()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "radar-8x", "[1,", "1]"]


def test_a_file_that_changed_since_the_task_was_built_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    zio.save(tiny_model(seed=0), path)
    ref = zoo.load(path).ref
    zio.save(tiny_model(seed=1), path, overwrite=True)
    with pytest.raises(
        ValueError, match=r"sha256 of .*m.pt.* expected .*the file is corrupt or was replaced"
    ):
        nm._load(ref)


def test_registry_model_of_another_version_is_refused():
    ref = ModelRef("sha256:" + "0" * 64, "registry:radar-8x")
    with pytest.raises(ValueError, match=r"workers run another version of xdownscale"):
        nm._load(ref)


def test_memory_model_without_source_needs_registration():
    m = DownscalingModel(GaussianDenoiser(torch.zeros(1, 2, 2), torch.eye(4)), {"name": "g"})
    with pytest.raises(LookupError, match=r"it was built in memory.*create the Client first"):
        nm.get_model(m.ref)
    nm.register_model(m)
    got, net = nm.get_model(m.ref, torch.device("cpu"))
    assert got is m and not net.training


def test_card_from_a_dict_and_contradictions():
    den = GaussianDenoiser(torch.zeros(1, 2, 2), torch.eye(4))
    m = DownscalingModel(den, {"name": "g", "flavour": "extra"})
    assert m.card.name == "g" and m.card.extra["flavour"] == "extra"
    with pytest.raises(
        ValueError, match=r"card.sigma_max=5.0 contradicts the denoiser's sigma_max=80.0"
    ):
        DownscalingModel(den, {"sigma_max": 5.0})
    with pytest.raises(TypeError, match=r"denoiser must be a torch.nn.Module"):
        DownscalingModel("not a module", {})  # type: ignore[arg-type]
    assert "GaussianDenoiser" not in repr(m) and "'g'" in repr(m)
