"""CyCLIP (``objective=cyclip``; ../shared/papers/tempnet.md §3, Table 2's baseline): the official
``CyCLIP_Loss`` arithmetic (tau-scaled similarities, squared, mean, times tau^2 B) written out here on the same
tensors; no penalty weight is CLIP; identical modalities have no penalty; the cross-modal penalty's gradient in
closed form; bad weights; a training step through the runner."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from methods.clip_loss import ClipLossConfig
from methods.cyclip import CyCLIPConfig
from reprolab.checks import ConfigError
from tests.conftest import TINY
from tests.tempnet.test_contrastive import B, _embeddings


def _official(image, text, tau, lambda_1=0.25, lambda_2=0.25):
    """The reference's steps as the spec describes them: CLIP on logits / tau, then both penalties on the
    tau-scaled similarity matrices, squared, averaged over the B x B entries and rescaled by tau^2 B."""
    n = len(image)
    per_image = image @ text.t() / tau
    per_text = per_image.t()
    target = torch.arange(n)
    contrastive = (F.cross_entropy(per_image, target) + F.cross_entropy(per_text, target)) / 2
    inmodal = ((image @ image.t()) / tau - (text @ text.t()) / tau).square().mean() * tau ** 2 * n
    crossmodal = (per_image - per_text).square().mean() * tau ** 2 * n
    return contrastive + lambda_1 * inmodal + lambda_2 * crossmodal


@pytest.mark.parametrize("tau,lambdas", [(0.01, (0.25, 0.25)), (0.07, (0.5, 0.1)), (1.0, (0.0, 2.0))])
def test_equals_the_official_loss(tau, lambdas):
    image, text = _embeddings(seed=1)
    ours = CyCLIPConfig(tau=tau, inmodal=lambdas[0], crossmodal=lambdas[1]).pair_loss(None, image, text, {})
    torch.testing.assert_close(ours["loss"], _official(image, text, tau, *lambdas), rtol=1e-12, atol=1e-12)
    assert ours["inmodal_cyclic"] > 0 and ours["crossmodal_cyclic"] > 0


def test_without_penalties_it_is_clip():
    image, text = _embeddings(seed=2)
    ours = CyCLIPConfig(tau=0.05, inmodal=0.0, crossmodal=0.0).pair_loss(None, image, text, {})["loss"]
    torch.testing.assert_close(ours, ClipLossConfig(tau=0.05).pair_loss(None, image, text, {})["loss"])


def test_identical_modalities_pay_no_penalty():
    """I = T: S = I I^T is symmetric and equals T T^T, so both penalties vanish and the loss is CLIP's."""
    image, _ = _embeddings(seed=3)
    out = CyCLIPConfig(tau=0.05).pair_loss(None, image, image.clone(), {})
    assert float(out["inmodal_cyclic"]) < 1e-28 and float(out["crossmodal_cyclic"]) < 1e-28  # float64 rounding
    torch.testing.assert_close(out["loss"], ClipLossConfig(tau=0.05).pair_loss(None, image, image, {})["loss"])


def test_crossmodal_gradient_in_closed_form():
    """d/dI ||S - S^T||_F^2 / B = 4 (S - S^T) T / B for S = I T^T (the difference is antisymmetric)."""
    image, text = _embeddings(seed=4, grad=True)
    out = CyCLIPConfig(tau=0.05, inmodal=0.0, crossmodal=1.0).pair_loss(None, image, text, {})
    (out["loss"] - out["clip_loss"]).backward()  # clip_loss is detached: only CLIP's part is subtracted
    clip_image, clip_text = _embeddings(seed=4, grad=True)
    ClipLossConfig(tau=0.05).pair_loss(None, clip_image, clip_text, {})["loss"].backward()
    with torch.no_grad():
        s = image @ text.t()
        expected = 4 * (s - s.t()) @ text / B
    torch.testing.assert_close(image.grad - clip_image.grad, expected)


@pytest.mark.parametrize("field", ["inmodal", "crossmodal"])
def test_negative_weight_is_refused_by_name(field):
    with pytest.raises(ConfigError, match=f"method.{field}"):
        CyCLIPConfig(**{field: -0.1})


def test_trains_through_the_contrastive_runner(run_job):
    """objective=cyclip is a plugin of the one training loop: a short run on the synthetic pairs trains, logs
    both penalties and validates with retrieval metrics."""
    import csv

    results, job = run_job([*TINY, "logger=csv", "callbacks=none", "~experiment", "data=gmm_pairs", "data.n_train=256",
                            "data.val_pairs=64", "data.batch_size=32", "model=clip_mlp", "optimizer=adamw",
                            "objective=cyclip", "objective.tau=0.05"])
    assert results["train/steps"] == 4 and 0 <= results["table/val_r1"] <= 1
    rows = list(csv.DictReader(open(next(job.output_dir.rglob("metrics.csv")))))
    assert any(r.get("train/crossmodal_cyclic") for r in rows) and any(r.get("train/inmodal_cyclic") for r in rows)
