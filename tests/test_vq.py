"""VQ with straight-through and the rotation trick (kexue.fm 10489): forward values and gradients."""

import pytest
import torch

from kexue_runs.methods.vq import VectorQuantizer, rotation_matrix, rotation_trick, straight_through

D = torch.float64  # gradients checked in double precision


def jacobian(fn, z, q):
    return torch.autograd.functional.jacobian(lambda v: fn(v, q), z)


def test_rotation_maps_direction_and_is_orthogonal():
    gen = torch.Generator().manual_seed(0)
    z, q = torch.randn(6, generator=gen, dtype=D), torch.randn(6, generator=gen, dtype=D)
    g = rotation_matrix(z, q)
    r = g * z.norm() / q.norm()
    assert torch.allclose(r @ (z / z.norm()), q / q.norm(), atol=1e-12)
    assert torch.allclose(r @ r.T, torch.eye(6, dtype=D), atol=1e-12)
    assert torch.allclose(g @ z, q, atol=1e-12)


def test_rotation_trick_forward_is_the_codeword_and_jacobian_is_closed_form():
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        z, q = torch.randn(5, generator=gen, dtype=D), torch.randn(5, generator=gen, dtype=D) * 0.3
        assert torch.allclose(rotation_trick(z, q), q, atol=1e-12)
        assert torch.allclose(jacobian(rotation_trick, z, q), rotation_matrix(z, q), atol=1e-10)


def test_rotation_preserves_the_angle_between_gradients():
    # the angle between the gradient at q and the one passed to z equals the angle between q and z
    gen = torch.Generator().manual_seed(2)
    z, q = torch.randn(4, generator=gen, dtype=D), torch.randn(4, generator=gen, dtype=D)
    grad_q = q.clone()  # a gradient along q itself comes back along z
    grad_z = rotation_matrix(z, q).T @ grad_q
    cos = torch.nn.functional.cosine_similarity
    assert torch.allclose(cos(grad_z, z, dim=0), torch.tensor(1.0, dtype=D), atol=1e-12)


def test_straight_through_jacobian_is_identity():
    z, q = torch.randn(5, dtype=D), torch.randn(5, dtype=D)
    assert torch.allclose(straight_through(z, q), q)
    assert torch.allclose(jacobian(straight_through, z, q), torch.eye(5, dtype=D))


def test_nearest_codeword_matches_brute_force_and_losses():
    vq = VectorQuantizer(64, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(500, 8)
    out, indices, codebook_loss, commitment_loss = vq(z)
    brute = torch.cdist(z, vq.codebook.detach()).argmin(-1)
    assert torch.equal(indices, brute)
    assert torch.allclose(out, vq.codebook[indices])
    assert torch.allclose(codebook_loss, commitment_loss)


def test_small_norm_init_is_small_and_kmeans_lowers_distortion():
    small = VectorQuantizer(256, 8, init="small_norm", generator=torch.Generator().manual_seed(0))
    assert small.codebook.abs().max() <= 1 / 256
    z = torch.randn(4000, 8) * 2 + 1
    vq = VectorQuantizer(32, 8, init="kmeans", generator=torch.Generator().manual_seed(0))
    random_normal = vq(z)[2].item()
    vq.kmeans_init(z, iters=0, seed=0)  # the data points Lloyd starts from
    seeded = vq(z)[2].item()
    vq.kmeans_init(z, iters=10, seed=0)
    lloyd = vq(z)[2].item()
    assert lloyd < seeded < random_normal  # Lloyd's iterations only lower the distortion


def test_fan_in_init_has_variance_one_over_codebook_size():
    """The paper's (MaskGIT, variance scaling fan_in) and Su's (lecun_normal) codebook scale: Var = 1/K, so a
    codeword's squared norm is d/K; a variance of 1 or 1/K^2 is many standard errors away."""
    for k in (64, 1024):
        vq = VectorQuantizer(k, 16, init="fan_in", generator=torch.Generator().manual_seed(0))
        n = vq.codebook.numel()
        assert vq.codebook.var().item() * k == pytest.approx(1.0, abs=4 * (2 / n) ** 0.5)
        assert vq.codebook.mean().abs().item() < 4 / (k * n) ** 0.5
