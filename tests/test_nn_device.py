"""Device selection: auto, cpu, cuda; clear errors for absent or unknown devices."""

from __future__ import annotations

import pytest
import torch

from xdownscale.nn import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_and_auto_without_cuda(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_absent_cuda_is_a_clear_error(no_cuda):
    with pytest.raises(
        ValueError, match=r"device='cuda' was requested but CUDA is not available.*device='cpu'"
    ):
        resolve_device("cuda")


def test_absent_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        ValueError,
        match=r"only 1 CUDA device\(s\) are visible \(cuda:0 to cuda:0; CUDA_VISIBLE_DEVICES=",
    ):
        resolve_device("cuda:3")


def test_unknown_devices():
    with pytest.raises(ValueError, match="device='tpu' is not supported; use 'auto', 'cpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device='cuda:x' is not supported"):
        resolve_device("cuda:x")
    with pytest.raises(TypeError, match="device must be a string"):
        resolve_device(0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_when_present():
    assert resolve_device("cuda").type == "cuda"
