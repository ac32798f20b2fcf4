"""The torch core of sample/ensemble: arrays in, arrays out, independent of batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdownscale.nn import DownscalingModel, GaussianDenoiser, register_model
from xdownscale.nn.pipeline import SamplingPlan, ensemble_statistics, sample_fields, sample_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def white():
    den = GaussianDenoiser(torch.zeros(1, 8, 8), torch.eye(64), parameterisation="consistency")
    model = DownscalingModel(den, {"name": "white", "units": "K"})
    register_model(model)
    return model


def _plan(model, **kw):
    base = dict(
        model=model.ref,
        sampler="consistency",
        sigmas=(2.0,),
        sigma_star=2.0,
        seed=3,
        batch_size=4,
        device="cpu",
        precision="float32",
        gamma=0.1,
        factor=1,
    )
    return SamplingPlan(**{**base, **kw})


def test_shapes_and_member_zero(white, rng):
    x = rng.normal(size=(2, 3, 8, 8))
    out = sample_fields(x, None, (0, 0), [0, 1, 2], _plan(white))
    assert out.shape == (3, 2, 3, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], sample_fields(x, None, (0, 0), [0], _plan(white))[0])
    assert not np.array_equal(out[0], out[1])  # members differ


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_results_do_not_depend_on_the_batch_size(white, rng, batch_size):
    x = rng.normal(size=(5, 8, 8))
    ref = sample_fields(x, None, (0,), [0, 1], _plan(white, batch_size=3))
    got = sample_fields(x, None, (0,), [0, 1], _plan(white, batch_size=batch_size))
    np.testing.assert_array_equal(got, ref)


def test_a_block_gets_the_noise_of_its_global_position(white, rng):
    x = rng.normal(size=(6, 8, 8))
    whole = sample_fields(x, None, (0,), [0], _plan(white))
    tail = sample_fields(x[4:], None, (4,), [0], _plan(white))
    np.testing.assert_array_equal(tail, whole[:, 4:])


def test_a_single_field_without_leading_dims(white, rng):
    x = rng.normal(size=(8, 8))
    out = sample_fields(x, None, (), [0, 1], _plan(white))
    assert out.shape == (2, 8, 8) and np.isfinite(out).all()


def test_nan_mask_is_restored(white, rng):
    x = rng.normal(size=(2, 8, 8))
    x[0, :3, :2] = np.nan
    out = sample_fields(x, None, (0,), [0], _plan(white))[0]
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))


def test_streaming_statistics_equal_those_of_the_members(white, rng):
    x = rng.normal(size=(2, 8, 8))
    n = 9
    members = sample_fields(x, None, (0,), range(n), _plan(white)).astype(np.float64)
    stats = [
        ("mean", None),
        ("std", None),
        ("min", None),
        ("max", None),
        ("exceedance", 0.5),
        ("quantile", 0.25),
        ("quantile", 0.9),
    ]
    got = ensemble_statistics(x, None, (0,), n, _plan(white, batch_size=2), stats)
    want = [
        members.mean(0),
        members.std(0),
        members.min(0),
        members.max(0),
        (members > 0.5).mean(0),
        np.quantile(members, 0.25, axis=0),
        np.quantile(members, 0.9, axis=0),
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_statistics_do_not_depend_on_the_batch_size(white, rng):
    x = rng.normal(size=(3, 8, 8))
    stats = [("mean", None), ("std", None)]
    a = ensemble_statistics(x, None, (0,), 7, _plan(white, batch_size=1), stats)
    b = ensemble_statistics(x, None, (0,), 7, _plan(white, batch_size=16), stats)
    np.testing.assert_array_equal(a, b)


def test_seed_of_a_sample_is_a_hash_of_seed_member_and_position():
    seeds = {
        sample_seed(s, m, (i, j)) for s in (0, 1) for m in (0, 1) for i in (0, 1) for j in (0, 1)
    }
    assert len(seeds) == 16
    assert sample_seed(5, 2, (1, 2)) == sample_seed(5, 2, [np.int64(1), 2])


def test_plan_is_small_and_carries_no_model(white):
    import pickle

    blob = pickle.dumps(_plan(white))
    assert len(blob) < 1000 and b"GaussianDenoiser" not in blob


@pytest.mark.parametrize("periodic_x", [False, True])
def test_finish_gives_each_field_the_references_spectral_shape(white, rng, periodic_x):
    from xdownscale import np_texture
    from xdownscale.nn.pipeline import finish

    x = torch.from_numpy(rng.normal(size=(3, 1, 12, 20)).astype("float64"))
    k = np.linspace(0.0, 0.75, 40)
    ln_ref = -np.log1p(20 * k)  # a red reference
    plan = _plan(white, texture=(tuple(k), tuple(ln_ref)), periodic_x=periodic_x, factor=2)
    out = finish(x, None, plan, nonnegative=False)
    k_a = np_texture.ANCHOR * 0.5 / 2
    for i in range(3):
        kin, lin = np_texture.reference_spectrum(x[i, 0].numpy(), periodic_x)
        kout, lout = np_texture.reference_spectrum(out[i, 0].numpy(), periodic_x)
        common = np.intersect1d(kin, kout)
        assert len(common) >= len(kin) - 1  # (a corner ring of round-off may vanish)
        lin, lout = lin[np.isin(kin, common)], lout[np.isin(kout, common)]
        kin = common
        low = kin <= k_a  # the scales the coarse grid resolves: untouched
        np.testing.assert_allclose(lout[low], lin[low], atol=1e-9)
        # above the anchor: the field's own power at the anchor, times the reference's shape
        a = np.flatnonzero(low)[-1]  # the anchor: the last ring at or below 0.75 x Nyquist
        want = lin[a] + np.interp(kin, k, ln_ref) - np.interp(kin[a], k, ln_ref)
        inside = ~low & (np.abs(want - lin) < 2 * np_texture.LIMIT)  # (the gain is clipped)
        assert inside.sum() > 5
        np.testing.assert_allclose(lout[inside], want[inside], atol=1e-6)
    assert finish(x, None, plan, nonnegative=True).min() >= 0
    # each field alone gives the same bits as in a batch
    torch.testing.assert_close(finish(x[1:2], None, plan, False), out[1:2], atol=0, rtol=0)
