"""PPO's clipped policy and value losses against per-token reference computations, and their masking."""

from __future__ import annotations

import math

import pytest
import torch

from llmpost.rl.losses import policy_loss, value_loss


def reference_policy_loss(logp, old, adv, clip):
    """Per token: max(-A r, -A clip(r)); mean over tokens; clip fraction; approx-KL (k3)."""
    terms, clipped, kls = [], 0, []
    for lp, o, a in zip(logp, old, adv, strict=True):
        r = math.exp(lp - o)
        unclipped, clipped_term = -a * r, -a * min(max(r, 1 - clip), 1 + clip)
        terms.append(max(unclipped, clipped_term))
        clipped += clipped_term > unclipped
        kls.append((r - 1) - (lp - o))
    n = len(terms)
    return sum(terms) / n, clipped / n, sum(kls) / n


def reference_value_loss(v, old, ret, clip):
    terms, clipped = [], 0
    for x, o, r in zip(v, old, ret, strict=True):
        xc = o + min(max(x - o, -clip), clip)
        terms.append(max((x - r) ** 2, (xc - r) ** 2))
        clipped += (xc - r) ** 2 > (x - r) ** 2
    return 0.5 * sum(terms) / len(terms), clipped / len(terms)


def random_batch(seed=0, shape=(3, 6)):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(shape, generator=g) * 3
    new = old + torch.randn(shape, generator=g) * 0.4  # some ratios far outside [0.8, 1.2]
    adv = torch.randn(shape, generator=g)
    mask = torch.ones(shape)
    mask[0, 4:] = 0
    mask[2, 1:] = 0
    return new, old, adv, mask


def test_policy_loss_matches_reference_on_real_tokens_only():
    new, old, adv, mask = random_batch()
    loss, stats = policy_loss(new, old, adv, mask, clip_range=0.2)
    keep = mask.bool()
    ref_loss, ref_clip, ref_kl = reference_policy_loss(new[keep].tolist(), old[keep].tolist(), adv[keep].tolist(), 0.2)
    assert loss.item() == pytest.approx(ref_loss, abs=1e-5)
    assert stats["clip_frac"].item() == pytest.approx(ref_clip, abs=1e-6)
    assert stats["approx_kl"].item() == pytest.approx(ref_kl, abs=1e-5)
    assert 0 < ref_clip < 1  # the batch exercises both branches


def test_policy_loss_at_ratio_one_is_minus_mean_advantage():
    _, old, adv, mask = random_batch(seed=1)
    loss, stats = policy_loss(old.clone(), old, adv, mask, clip_range=0.2)
    assert loss.item() == pytest.approx(-(adv * mask).sum().item() / mask.sum().item(), abs=1e-6)
    assert stats["clip_frac"].item() == 0 and stats["approx_kl"].item() == pytest.approx(0, abs=1e-7)


def test_masked_tokens_get_no_gradient_and_do_not_change_the_loss():
    new, old, adv, mask = random_batch(seed=2)
    new.requires_grad_(True)
    loss, _ = policy_loss(new, old, adv, mask, clip_range=0.2)
    loss.backward()
    assert new.grad[~mask.bool()].abs().sum() == 0
    assert new.grad[mask.bool()].abs().sum() > 0
    garbage_new, garbage_adv = new.detach().clone(), adv.clone()
    garbage_new[~mask.bool()] = 50.0
    garbage_adv[~mask.bool()] = -1e4
    again, _ = policy_loss(garbage_new, old, garbage_adv, mask, clip_range=0.2)
    assert again.item() == pytest.approx(loss.item(), abs=1e-6)


def test_clipping_stops_the_gradient_beyond_the_trust_region():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)  # ratio 1.5 (clipped), 1.1 (inside)
    adv = torch.ones(1, 2)
    loss, stats = policy_loss(new, old, adv, torch.ones(1, 2), clip_range=0.2)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] != 0
    assert stats["clip_frac"].item() == pytest.approx(0.5)


def test_value_loss_matches_reference():
    g = torch.Generator().manual_seed(3)
    old = torch.randn(2, 5, generator=g)
    values = old + torch.randn(2, 5, generator=g) * 0.5
    returns = torch.randn(2, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]).float()
    loss, stats = value_loss(values, old, returns, mask, clip_range=0.2)
    keep = mask.bool()
    ref_loss, ref_clip = reference_value_loss(values[keep].tolist(), old[keep].tolist(), returns[keep].tolist(), 0.2)
    assert loss.item() == pytest.approx(ref_loss, abs=1e-5)
    assert stats["value_clip_frac"].item() == pytest.approx(ref_clip, abs=1e-6)
