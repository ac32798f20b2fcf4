"""UNet: any size, 1..C channels, boundary handling, batch invariance, config round trip."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xdownscale.nn import UNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(**kw) -> UNet:
    torch.manual_seed(0)
    return UNet(channels=kw.pop("channels", (8, 16)), **kw).eval()


def test_tiny_network_has_few_parameters():
    n = sum(p.numel() for p in _net(attention=False).parameters())
    assert 5_000 < n < 40_000


@settings(max_examples=8, deadline=None)
@given(
    ny=st.integers(1, 23),
    nx=st.integers(1, 23),
    channels=st.integers(1, 3),
    levels=st.integers(1, 3),
    periodic=st.booleans(),
)
def test_any_size_and_channels_keep_shape(ny, nx, channels, levels, periodic):
    net = _net(in_channels=channels, channels=(8, 8, 16)[:levels], periodic_x=periodic)
    with torch.no_grad():
        out = net(torch.randn(2, channels, ny, nx), torch.zeros(2))
    assert out.shape == (2, channels, ny, nx)
    assert torch.isfinite(out).all()


def test_out_channels_can_differ():
    out = _net(in_channels=3, out_channels=1)(torch.randn(1, 3, 8, 8), torch.zeros(1))
    assert out.shape == (1, 1, 8, 8)


def _edge_influence(periodic: bool, nx: int = 16) -> float:
    """|d out[..., 0] / d in[..., nx-1]| of one padded 3x3 convolution of the network."""
    conv = _net(periodic_x=periodic).conv_in
    x = torch.randn(1, 1, 8, nx, requires_grad=True)
    conv(x)[..., :, 0].sum().backward()
    return float(x.grad[..., -1].abs().sum())


def test_periodic_x_wraps_around_and_reflection_does_not():
    # (GroupNorm and attention are global, so the test looks at the padded convolution)
    assert _edge_influence(periodic=True) > 0
    assert _edge_influence(periodic=False) == 0.0


def test_periodic_network_is_equivariant_to_rolls_along_x():
    net = _net(periodic_x=True, channels=(8, 16, 16))
    x = torch.randn(2, 1, 12, 32)
    with torch.no_grad():
        rolled_in = net(torch.roll(x, 4, dims=-1), torch.zeros(2))
        rolled_out = torch.roll(net(x, torch.zeros(2)), 4, dims=-1)
    torch.testing.assert_close(rolled_in, rolled_out, rtol=1e-5, atol=1e-5)


def test_doubly_periodic_network_is_equivariant_to_rolls_along_both_axes():
    net = _net(periodic_x=True, periodic_y=True, channels=(8, 16, 16))
    assert net.config["periodic_y"] is True and UNet.from_config(net.config).periodic_y
    x = torch.randn(2, 1, 16, 32)
    with torch.no_grad():
        rolled_in = net(torch.roll(x, (4, 8), dims=(-2, -1)), torch.zeros(2))
        rolled_out = torch.roll(net(x, torch.zeros(2)), (4, 8), dims=(-2, -1))
    torch.testing.assert_close(rolled_in, rolled_out, rtol=1e-5, atol=1e-5)
    # without periodic_y a roll along y is not an equivariance (the edges reflect)
    plain = _net(periodic_x=True, channels=(8, 16, 16))
    assert "periodic_y" not in plain.config  # older configs load unchanged
    with torch.no_grad():
        a = plain(torch.roll(x, 4, dims=-2), torch.zeros(2))
        b = torch.roll(plain(x, torch.zeros(2)), 4, dims=-2)
    assert float((a - b).abs().max()) > 1e-3


def test_reflection_padding_sees_no_zero_border():
    # a constant field stays constant through reflect-padded convolutions away from any
    # zero padding: every output pixel of the first conv is equal
    net = _net()
    with torch.no_grad():
        h = net.conv_in(torch.full((1, 1, 10, 12), 3.0))
    assert torch.allclose(h, h[..., :1, :1].expand_as(h))


def test_batch_composition_does_not_change_results():
    net = _net(attention=True)
    x, c = torch.randn(9, 1, 20, 28), torch.randn(9)
    with torch.no_grad():
        whole = net(x, c)
        split = torch.cat([net(x[:4], c[:4]), net(x[4:], c[4:])])
    assert torch.equal(whole, split)


@pytest.mark.parametrize("periodic", [False, True])
def test_inference_path_agrees_with_the_training_path(periodic):
    # without autograd on the CPU the UNet fuses padding into SiLU, writes the upsampling into
    # the concatenation, computes 1x1 products per sample and splits the batch into
    # micro-batches: the same values up to float32 rounding (the 1x1 products are another
    # BLAS call), and the same bits for every micro-batch size and a sample alone
    net = _net(attention=True, periodic_x=periodic, periodic_y=periodic)
    x, c = torch.randn(7, 1, 64, 128), torch.randn(7)
    with torch.enable_grad():
        plain = net(x, c).detach()  # autograd: the plain code, the whole batch at once
    with torch.no_grad():
        want = net(x, c)
        torch.testing.assert_close(want, plain, rtol=1e-5, atol=1e-5)
        for mb in (2, 3, 64):
            net.micro_batch = mb
            assert torch.equal(net(x, c), want)
            assert torch.equal(net(x[2:3], c[2:3]), want[2:3])  # alone (run as two)


def test_micro_batches_on_two_threads_give_the_same_bits():
    net = _net(channels=(8, 16))
    net.micro_batch = 2
    x, c = torch.randn(5, 1, 64, 64), torch.full((5,), 0.3)
    with torch.no_grad():
        one = net(x, c)
        torch.set_num_threads(2)
        try:
            two = net(x, c)
            assert torch.get_num_threads() == 2  # the caller keeps its setting
        finally:
            torch.set_num_threads(1)
    assert torch.equal(one, two)


def test_from_config_round_trip():
    net = _net(attention=True, heads=2, periodic_x=True)
    clone = UNet.from_config(net.config)
    clone.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 8, 16)
    with torch.no_grad():
        assert torch.equal(net(x, torch.ones(2)), clone.eval()(x, torch.ones(2)))


def test_noise_level_changes_the_output():
    net = _net()
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert not torch.equal(net(x, torch.tensor([0.0])), net(x, torch.tensor([1.0])))


def test_bad_arguments():
    with pytest.raises(ValueError, match="non-empty channels tuple"):
        UNet(channels=())
    with pytest.raises(ValueError, match="heads=3 must divide the bottleneck channels 16"):
        UNet(channels=(8, 16), heads=3)
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, channels, y, x\)"):
        _net()(torch.zeros(8, 8), torch.zeros(1))
