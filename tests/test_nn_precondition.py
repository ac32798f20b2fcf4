"""EDM and consistency preconditioning: coefficients, boundary condition, shapes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xdownscale.nn import ConsistencyModel, EDMDenoiser, UNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder(nn.Module):
    """F that returns a constant and records what it was given."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.value = value

    def forward(self, x, c_noise):
        self.seen = (x.clone(), c_noise.clone())
        return torch.full_like(x, self.value)


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0, 80.0])
def test_edm_coefficients(sigma):
    sd = 0.5
    f = Recorder(1.0)
    d = EDMDenoiser(f, sigma_data=sd)
    x = torch.full((2, 1, 3, 3), 2.0)
    out = d(x, sigma)
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / math.sqrt(sigma**2 + sd**2)
    c_in = 1 / math.sqrt(sigma**2 + sd**2)
    torch.testing.assert_close(out, torch.full_like(x, c_skip * 2.0 + c_out))
    torch.testing.assert_close(f.seen[0], c_in * x)
    torch.testing.assert_close(f.seen[1], torch.full((2,), math.log(sigma) / 4))


@pytest.mark.parametrize("sigma", [0.01, 0.5, 80.0])
def test_consistency_coefficients(sigma):
    sd, eps = 0.5, 0.002
    d = ConsistencyModel(Recorder(1.0), sigma_data=sd, sigma_min=eps)
    x = torch.full((1, 1, 2, 2), -1.0)
    c_skip = sd**2 / ((sigma - eps) ** 2 + sd**2)
    c_out = sd * (sigma - eps) / math.sqrt(sd**2 + sigma**2)
    torch.testing.assert_close(d(x, sigma), torch.full_like(x, -c_skip + c_out))


def test_consistency_boundary_condition_holds_for_any_network():
    torch.manual_seed(0)
    f = ConsistencyModel(UNet(channels=(8, 16)))
    x = torch.randn(3, 1, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(f(x, f.sigma_min), x, rtol=0, atol=1e-6)
        assert not torch.allclose(f(x, 1.0), x)


def test_edm_denoiser_is_identity_at_small_noise_and_mean_at_large():
    d = EDMDenoiser(Recorder(0.0))
    x = torch.ones(1, 1, 2, 2)
    assert float(d(x, 1e-4).mean()) == pytest.approx(1.0, rel=1e-6)
    assert abs(float(d(x, 1e4).mean())) < 1e-6


def test_per_sample_sigma_and_config():
    d = EDMDenoiser(Recorder(1.0), sigma_data=1.0, sigma_min=0.01, sigma_max=10.0)
    out = d(torch.zeros(2, 1, 1, 1), torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(out.flatten(), torch.tensor([1 / math.sqrt(2), 3 / math.sqrt(10)]))
    assert d.config == {
        "parameterisation": "edm",
        "sigma_data": 1.0,
        "sigma_min": 0.01,
        "sigma_max": 10.0,
    }


def test_bad_arguments():
    with pytest.raises(ValueError, match="need sigma_data > 0 and 0 < sigma_min < sigma_max"):
        EDMDenoiser(Recorder(), sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(
        ValueError, match=r"sigma must be a number or have shape \(batch,\) = \(2,\)"
    ):
        EDMDenoiser(Recorder())(torch.zeros(2, 1, 2, 2), torch.ones(3))
