"""The contrastive objectives (spec ../shared/papers/tempnet.md §2.2, §3, §6.9): SogCLR's moving average
equals the exact sum over negatives when it sees the whole dataset with gamma = 1; the encoders' gradient
of SogCLR / iSogCLR is that of the global (robust) contrastive loss; TempNet's tau gets gw_i / B, gw the
dual's derivative; the iSogCLR table update; retrieval metrics; the one-pair batch."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods.clip_loss import ClipLossConfig
from methods.contrastive import GlobalEstimator, recall_at, similarity_diffs
from methods.isogclr import ISogCLRConfig
from methods.sogclr import SogCLRConfig
from reprolab.checks import ConfigError

B, D = 6, 5


def _embeddings(seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=-1)
    return image.requires_grad_(grad), text.requires_grad_(grad)


def _batch(epoch=0):
    return {"index": torch.arange(B), "epoch": torch.tensor(epoch)}


def _offdiag_logsumexp(d: torch.Tensor) -> torch.Tensor:
    """log sum_{j != i} exp(d_ij) per row."""
    return torch.logsumexp(d.masked_fill(torch.eye(B, dtype=torch.bool), -math.inf), 1)


def test_moving_average_with_gamma_one_is_the_exact_sum_over_negatives():
    image, text = _embeddings()
    d = (image @ text.t() - (image @ text.t()).diagonal()[:, None]) / 0.1
    est = GlobalEstimator()
    est.weights(d * 0.3, torch.arange(B), 1.0, True)  # an earlier epoch: its state must be forgotten at gamma = 1
    w, s, b = est.weights(d, torch.arange(B), 1.0, False)
    exact = torch.exp(d - b[:, None]).masked_fill(torch.eye(B, dtype=torch.bool), 0).sum(1)
    torch.testing.assert_close(s, exact)
    torch.testing.assert_close(w, torch.softmax(d.masked_fill(torch.eye(B, dtype=torch.bool), -math.inf), 1))


def test_sogclr_gradient_is_the_global_contrastive_gradient():
    """With the whole dataset in the batch at epoch 0, SogCLR's surrogate (weights (B-1) softmax, then / (B-1))
    has the gradient of tau mean_i logsumexp_{j != i}(image diffs / tau) + the same for texts."""
    tau = 0.2
    image, text = _embeddings(grad=True)
    SogCLRConfig(tau=tau).pair_loss(None, image, text, _batch())["loss"].backward()
    ours = image.grad.clone(), text.grad.clone()
    image2, text2 = _embeddings(grad=True)
    di, dt = similarity_diffs(image2, text2)
    ref = tau * (_offdiag_logsumexp(di / tau).mean() + _offdiag_logsumexp(dt / tau).mean())
    ref.backward()
    torch.testing.assert_close(ours[0], image2.grad)
    torch.testing.assert_close(ours[1], text2.grad)


class _FixedTau(torch.nn.Module):
    """A 'TempNet' whose tau are leaves we can read the gradient of."""

    def __init__(self, tau_i, tau_t):
        super().__init__()
        self.tau_i, self.tau_t = tau_i, tau_t

    def forward(self, image, text):
        return self.tau_i, self.tau_t


class _Model(torch.nn.Module):
    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature


def test_tempnet_loss_gradients_in_the_encoders_and_in_tau():
    """Epoch 0, the whole dataset in the batch: the encoders get the gradient of the robust loss
    sum_i tau_i log((1/(B-1)) sum_{j != i} exp(diff_ij / tau_i)) / B (tau fixed), and tau_i gets gw_i / B with
    gw_i = log((1/(B-1)) sum_{j != i} exp(d_ij)) + rho - sum_j softmax_j(d_ij) d_ij, the dual's derivative."""
    rho = 2.0
    g = torch.Generator().manual_seed(1)
    tau_i = (0.05 + 0.2 * torch.rand(B, generator=g, dtype=torch.float64)).requires_grad_(True)
    tau_t = (0.05 + 0.2 * torch.rand(B, generator=g, dtype=torch.float64)).requires_grad_(True)
    image, text = _embeddings(seed=2, grad=True)
    ISogCLRConfig(rho=rho).pair_loss(_Model(_FixedTau(tau_i, tau_t)), image, text, _batch())["loss"].backward()

    image2, text2 = _embeddings(seed=2, grad=True)
    robust = 0.0
    for diffs, tau in zip(similarity_diffs(image2, text2), (tau_i.detach(), tau_t.detach())):
        robust = robust + (tau * (_offdiag_logsumexp(diffs / tau[:, None]) - math.log(B - 1))).mean()
    robust.backward()
    torch.testing.assert_close(image.grad, image2.grad)
    torch.testing.assert_close(text.grad, text2.grad)
    for diffs, tau in zip(similarity_diffs(image2.detach(), text2.detach()), (tau_i, tau_t)):
        d = diffs / tau.detach()[:, None]
        p = torch.softmax(d.masked_fill(torch.eye(B, dtype=torch.bool), -math.inf), 1)
        gw = _offdiag_logsumexp(d) - math.log(B - 1) + rho - (p * d).sum(1)
        torch.testing.assert_close(tau.grad, gw / B)


def test_isogclr_table_moves_tau_by_momentum_sgd_within_bounds():
    cfg = ISogCLRConfig(rho=2.0, eta=0.03, beta_u=0.5, grad_clip=5.0)
    image, text = _embeddings(seed=3)
    cfg.pair_loss(_Model(None), image, text, _batch())  # no temperature -> the per-sample table
    tau = cfg.tables["image"]["tau"][:B]
    di, _ = similarity_diffs(image, text)
    d = di / 0.01
    p = torch.softmax(d.masked_fill(torch.eye(B, dtype=torch.bool), -math.inf), 1)
    gw = _offdiag_logsumexp(d) - math.log(B - 1) + 2.0 - (p * d).sum(1)
    expected = (0.01 - 0.03 * 0.5 * gw.clamp(-5, 5)).clamp(0.005, 0.05)
    torch.testing.assert_close(tau, expected.float(), rtol=1e-5, atol=1e-7)


def test_state_survives_a_checkpoint():
    cfg = ISogCLRConfig()
    image, text = _embeddings(seed=4)
    cfg.pair_loss(_Model(None), image, text, _batch())
    fresh = ISogCLRConfig()
    fresh.load_state_dict(cfg.state_dict())
    torch.testing.assert_close(fresh.estimators["image"].s, cfg.estimators["image"].s)
    torch.testing.assert_close(fresh.tables["text"]["tau"], cfg.tables["text"]["tau"])


def test_clip_loss_is_symmetric_cross_entropy_at_tau():
    image, text = _embeddings(seed=5)
    logits = image @ text.t() / 0.05
    labels = torch.arange(B)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(ClipLossConfig(tau=0.05).pair_loss(None, image, text, _batch())["loss"], expected)


def test_recall_at_k():
    scores = torch.tensor([[3.0, 1.0, 2.0], [5.0, 4.0, 0.0], [0.0, 1.0, 9.0]])
    assert recall_at(scores, 1) == pytest.approx(2 / 3)  # row 1's own score (4) is second
    assert recall_at(scores, 2) == 1.0


def test_a_batch_of_one_pair_is_refused():
    from reprolab.data.config import GMMPairsData
    from reprolab.models.config import ClipMLP

    model = ClipMLP().build()
    one = {"image": torch.randn(1, 32), "text": torch.randn(1, 32), "index": torch.tensor([0]), "epoch": torch.tensor(0)}
    with pytest.raises(ConfigError, match="batch_size >= 2"):
        ISogCLRConfig().loss(model, one)
    with pytest.raises(ConfigError, match="at least 2 pairs"):
        GMMPairsData(batch_size=1)


def test_tempnet_clip_prototypes_start_from_the_other_modality():
    from methods.tempnet_clip import TempNetClipConfig

    net = TempNetClipConfig(prototypes=4).module(5)
    image, text = _embeddings(seed=6)
    net.train()(image.float(), text.float())
    assert torch.equal(net.image.prototypes.data, text[:4].float()) and torch.equal(net.text.prototypes.data, image[:4].float())
    before = net.image.prototypes.data.clone()
    net(text.float(), image.float())  # only the first training batch sets them
    assert torch.equal(net.image.prototypes.data, before)


def test_rn50_distilbert_dual_encoder_builds_and_embeds():
    """The paper-scale CLIP model (transformers ResNetModel + DistilBertModel, model=clip_rn50_distilbert),
    built from config at toy sizes: normalised embeddings of embed_dim for both towers."""
    from reprolab.models.config import ClipRN50DistilBert

    cfg = ClipRN50DistilBert(pretrained=False, embed_dim=16, image_width=64, image_depths=[1, 1, 1, 1], text_width=32,
                             text_layers=1, text_heads=2, text_vocab=100)
    model = cfg.build().eval()
    batch = {"pixel_values": torch.randn(3, 3, 64, 64), "input_ids": torch.randint(0, 100, (3, 7)),
             "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    with torch.no_grad():
        image, text = model(batch)
    assert image.shape == text.shape == (3, 16)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(3))
    assert ClipRN50DistilBert().image_depths == [3, 4, 6, 3]  # ResNet-50's stages


def test_caption_retrieval_with_several_captions_per_image():
    """3 images, 5 captions (image 0 has captions 0, 1, 2; image 1 caption 3; image 2 caption 4), by hand."""
    from methods.contrastive import caption_retrieval

    image = torch.eye(3)
    text = torch.tensor([[1.0, 0, 0], [0, 0.9, 0.1], [0.2, 0.1, 0], [0, 1.0, 0], [0.5, 0, 0.4]])
    image_of_text = torch.tensor([0, 0, 0, 1, 2])
    # caption -> image: 0 -> 0 yes, 1 -> 1 no, 2 -> 0 yes, 3 -> 1 yes, 4 -> 0 no  => 3 / 5
    # image -> caption: 0 -> caption 0 (image 0) yes, 1 -> caption 3 yes, 2 -> caption 4 yes => 3 / 3
    r1 = caption_retrieval(image, text, image_of_text, 1)
    assert r1 == pytest.approx({"ir": 60.0, "tr": 100.0})
    # at k = 2: caption 1 ranks image 1 then image 2 (0.9, 0.1), image 0 not in => still missed; caption 4 -> {0, 2} yes
    assert caption_retrieval(image, text, image_of_text, 2)["ir"] == pytest.approx(80.0)


def test_zero_shot_accuracy_averages_the_normalised_templates():
    from methods.contrastive import zero_shot_accuracy

    # class 0's two templates point at e0 and e1 (mean: between them), class 1's at e1 only (but 10x longer: it is
    # normalised first, so its length does not count)
    class_text = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 10.0], [0.0, 10.0]]])
    image = F.normalize(torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 1.2]]), dim=-1)
    # image 0 -> class 0; image 1 -> class 1; image 2 (angle 50 deg) -> class 0 (45 deg) over class 1 (90 deg)
    assert zero_shot_accuracy(image, torch.tensor([0, 1, 0]), class_text) == pytest.approx(100.0)
    assert zero_shot_accuracy(image, torch.tensor([0, 0, 1]), class_text) == pytest.approx(100 / 3)
