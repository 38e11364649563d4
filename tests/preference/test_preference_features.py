"""The synthetic reward-learning environment (spec ../shared/papers/r3m.md §5.1), the MLP reward model
and the reward-model metrics, each against an independent computation."""
from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from methods.bt import BTConfig
from methods.preference_metrics import auroc, outlier_counts, pearson, ranks, spearman
from methods.r3m import R3MConfig
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData
from reprolab.data.preference_features import irrational_flips
from reprolab.models.config import MLPReward

SMALL = dict(test_pairs=200, test_items=300)


def build(**kw):
    return PreferenceFeaturesData(**{**SMALL, **kw}).build(0)


def true_flips(source):
    """Independently: a training pair is flipped when its chosen item has the lower true reward."""
    return source.reward(source.chosen.double()) < source.reward(source.rejected.double())


@pytest.mark.parametrize("kw", [dict(corruption="none"), dict(corruption="stochastic", temperature=0.3),
                                dict(corruption="myopic", segment_len=10, gamma=0.3), dict(corruption="irrational", p=1 / 3),
                                dict(corruption="random", flip_rate=0.2), dict(corruption="adversarial", flip_rate=0.1),
                                dict(corruption="none", truth="linear")], ids=lambda kw: "-".join(map(str, kw.values())))
def test_flipped_records_exactly_the_pairs_whose_label_disagrees_with_the_true_reward(kw):
    source = build(**kw)
    assert torch.equal(source.flipped, true_flips(source))
    assert abs(float(source.delta.std()) - 1.0) < 1e-9  # training margins standardised
    val = source.val_batches()
    assert len(val) == 1  # whole-set metrics are computed in one piece
    v = val[0]
    assert (source.reward(v["chosen_features"].double()) > source.reward(v["rejected_features"].double())).all()
    assert torch.allclose(v["item_reward"].double(), source.reward(v["item_features"].double()), atol=1e-5)
    if kw["corruption"] == "none":
        assert not source.flipped.any()


def test_irrational_noise_flips_the_largest_margins_of_each_block():
    """r3m §6.8: blocks of 64, p = 1/3, 1/2, 2/3 flip exactly 4, 8, 16 pairs per full block, the largest |Delta|."""
    delta = torch.randn(64 * 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for p, k in ((1 / 3, 4), (1 / 2, 8), (2 / 3, 16)):
        flips = irrational_flips(delta, 64, p)
        for b in range(5):
            block, f = delta[64 * b : 64 * (b + 1)].abs(), flips[64 * b : 64 * (b + 1)]
            assert int(f.sum()) == k and block[f].min() > block[~f].max()
    for p, rate in ((1 / 3, 0.064), (1 / 2, 0.128), (2 / 3, 0.256)):  # the spec's rates at n = 2000
        assert int(build(corruption="irrational", p=p).flipped.sum()) == round(rate * 2000)


def test_random_adversarial_and_stochastic_rates():
    assert abs(build(corruption="random", flip_rate=0.2).flipped.float().mean().item() - 0.2) < 0.03
    adv = build(corruption="adversarial", flip_rate=0.1)
    assert int(adv.flipped.sum()) == 200 and adv.delta.abs()[adv.flipped].min() > adv.delta.abs()[~adv.flipped].max()
    rates = [build(corruption="stochastic", temperature=t).flipped.float().mean().item() for t in (0.15, 0.3, 0.6)]
    assert rates == sorted(rates) and 0.10 < rates[1] < 0.20  # the spec's prototype: ~15 % at T = 0.3


def test_myopic_labels_follow_the_discounted_sum():
    source = build(corruption="myopic", segment_len=10, gamma=0.3)
    w = 0.3 ** torch.arange(9, -1, -1, dtype=torch.float64)
    steps = source.reward.steps
    assert ((steps(source.chosen.double()) * w).sum(-1) > (steps(source.rejected.double()) * w).sum(-1)).all()
    assert source.flipped.any()
    with pytest.raises(ConfigError, match="data.segment_len"):
        PreferenceFeaturesData(corruption="myopic", segment_len=1)


def test_batches_cover_every_pair_once_per_epoch_and_resume_at_the_same_place():
    source = build(n_train=100, batch_size=32)
    stream = source.train_batches(0, 0, 1)
    batches = [next(stream) for _ in range(8)]  # two epochs of ceil(100 / 32) = 4 batches
    for epoch in (batches[:4], batches[4:]):
        assert sorted(torch.cat([b["pair_id"] for b in epoch]).tolist()) == list(range(100))
    assert not torch.equal(batches[0]["pair_id"], batches[4]["pair_id"])  # a fresh order each epoch
    resumed = next(source.train_batches(5, 0, 1))
    assert all(torch.equal(resumed[k], batches[5][k]) for k in resumed)
    b = batches[0]
    assert torch.equal(b["chosen_features"], source.chosen[b["pair_id"]]) and torch.equal(b["flipped"], source.flipped[b["pair_id"]])
    halves = [next(source.train_batches(0, r, 2))["pair_id"] for r in (0, 1)]
    assert not set(halves[0].tolist()) & set(halves[1].tolist())


def test_the_environment_is_a_function_of_its_seed():
    a, b = build(corruption="random"), build(corruption="random")
    assert torch.equal(a.chosen, b.chosen) and torch.equal(a.flipped, b.flipped)
    c = PreferenceFeaturesData(**SMALL, corruption="random").build(1)
    assert not torch.equal(a.chosen, c.chosen)
    d = PreferenceFeaturesData(**SMALL, corruption="random", env_seed=0).build(1)
    assert torch.equal(a.chosen, d.chosen)


@pytest.mark.parametrize("kw, key", [({"corruption": "typo"}, "data.corruption"), ({"truth": "cubic"}, "data.truth"),
                                     ({"flip_rate": 1.5}, "data.flip_rate"), ({"gamma": 0.0}, "data.gamma"),
                                     ({"temperature": 0.0}, "data.temperature"), ({"n_train": 0}, "data.n_train")])
def test_bad_data_values_name_the_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        PreferenceFeaturesData(**kw)


def test_mlp_reward_sums_its_steps_and_names_a_wrong_input_size():
    torch.manual_seed(0)
    model = MLPReward(input_dim=4, hidden_sizes=[8, 8]).build(vocab_size=123)
    x = torch.randn(5, 3, 4)
    out = model(x)
    assert out.shape == (5,)
    assert torch.allclose(out, sum(model(x[:, t]) for t in range(3)), atol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == 4 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    with pytest.raises(ConfigError, match="model.input_dim"):
        model(torch.randn(2, 5))
    with pytest.raises(ConfigError, match="model.hidden_sizes"):
        MLPReward(hidden_sizes=[0])


def test_correlations_and_ranks_match_scipy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, generator=gen, dtype=torch.float64)
    y = x + torch.randn(500, generator=gen, dtype=torch.float64)
    y[:50] = y[50:100]  # ties
    assert abs(pearson(x, y).item() - scipy.stats.pearsonr(x.numpy(), y.numpy())[0]) < 1e-12
    assert abs(spearman(x, y).item() - scipy.stats.spearmanr(x.numpy(), y.numpy())[0]) < 1e-12
    assert torch.allclose(ranks(y), torch.from_numpy(scipy.stats.rankdata(y.numpy())))


def test_auroc_and_outlier_counts_match_brute_force():
    gen = torch.Generator().manual_seed(0)
    score = torch.randn(300, generator=gen, dtype=torch.float64).round(decimals=1)  # with ties
    pos = torch.rand(300, generator=gen) < 0.3
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a in score[pos].tolist() for b in score[~pos].tolist()]
    assert abs(auroc(score, pos).item() - sum(pairs) / len(pairs)) < 1e-12
    d = -score
    c = outlier_counts(d, pos, 0.2)
    flag = d < 0.2
    tp = (flag & pos).sum().item()
    prec, rec = tp / flag.sum().item(), tp / pos.sum().item()
    assert abs((c["outlier_precision"][0] / c["outlier_precision"][1]).item() - prec) < 1e-12
    assert abs((c["outlier_recall"][0] / c["outlier_recall"][1]).item() - rec) < 1e-12
    assert abs((c["outlier_f1"][0] / c["outlier_f1"][1]).item() - 2 * prec * rec / (prec + rec)) < 1e-12


def test_reward_objectives_report_the_environment_metrics():
    """evaluate on the validation batch: clean accuracy, correlations with r*, outlier metrics at R3M's knot."""
    source = build(corruption="irrational", p=0.5)
    torch.manual_seed(0)
    model = MLPReward().build()
    val = source.val_batches()[0]
    with torch.no_grad():
        out = R3MConfig(lam=0.3).evaluate(model, val)
        bt = BTConfig().evaluate(model, val)
        d = model(source.chosen) - model(source.rejected)
    for k in ("loss", "reward_acc", "pearson", "spearman", "outlier_precision", "outlier_recall", "outlier_f1",
              "outlier_auroc", "flagged_share", "flipped_share"):
        assert k in out and k in bt
    assert abs((out["flagged_share"][0] / out["flagged_share"][1]).item() - (d < math.log(1 / 0.3 - 1)).float().mean().item()) < 1e-6
    assert abs((bt["flagged_share"][0] / bt["flagged_share"][1]).item() - (d < 0).float().mean().item()) < 1e-6
    assert abs((out["flipped_share"][0] / out["flipped_share"][1]).item() - 0.128) < 1e-9
    r_hat = model(val["item_features"]).detach()
    assert abs(out["pearson"][0].item() - scipy.stats.pearsonr(r_hat.double().numpy(), val["item_reward"].double().numpy())[0]) < 1e-6


def test_all_in_batch_pairing_trains_on_every_pair_of_the_batch_items():
    """adaptive_pref §6.10: B items give exactly B(B-1)/2 pairs, the winner the larger true reward; the
    pool is covered once per epoch; pair_id numbers the pairs of one epoch."""
    source = PreferenceFeaturesData(**SMALL, pairing="all_in_batch", pool_items=40, batch_size=8).build(0)
    stream = source.train_batches(0, 0, 1)
    batches = [next(stream) for _ in range(5)]
    for j, b in enumerate(batches):
        assert b["chosen_features"].shape[0] == 28 and not b["flipped"].any()
        assert (source.reward(b["chosen_features"].double()) > source.reward(b["rejected_features"].double())).all()
        assert torch.equal(b["pair_id"], torch.arange(28 * j, 28 * (j + 1)))
    items = torch.cat([torch.cat([b["chosen_features"], b["rejected_features"]]) for b in batches])
    assert torch.unique(items.flatten(1), dim=0).shape[0] == 40  # every pool item once per epoch
    assert "train_flipped" not in source.val_batches()[0]
    with pytest.raises(ConfigError, match="data.corruption"):
        PreferenceFeaturesData(pairing="all_in_batch", corruption="random")


def test_bandit_proxy_and_quintiles_match_a_loop():
    from methods.preference_metrics import bandit_proxy, quintile_means

    gen = torch.Generator().manual_seed(0)
    r_true = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    r_hat = r_true + torch.randn(6, 5, generator=gen, dtype=torch.float64)
    out = bandit_proxy(r_hat, r_true)
    for b in (0.1, 0.3, 1.0):
        value = sum(sum(math.exp(r_hat[c, i] / b) * r_true[c, i] for i in range(5)) / sum(math.exp(r_hat[c, i] / b) for i in range(5))
                    for c in range(6)) / 6
        assert abs(out[f"policy_value_b{b:g}"].item() - value) < 1e-12
    assert abs(out["best_of_n"].item() - sum(r_true[c, int(r_hat[c].argmax())].item() for c in range(6)) / 6) < 1e-12
    assert abs(out["oracle_best_of_n"].item() - r_true.max(1).values.mean().item()) < 1e-12
    strength = torch.arange(1, 11, dtype=torch.float64)  # quintiles {1,2}, {3,4}, ...
    q = quintile_means({"v": strength * 10}, strength)
    assert [(q[f"v_q{k}"][0] / q[f"v_q{k}"][1]).item() for k in range(1, 6)] == [15.0, 35.0, 55.0, 75.0, 95.0]


def test_validation_reports_tau_and_gaps_per_strength_quintile():
    from methods.adaptive_pref import AdaptivePrefConfig

    source = build()
    torch.manual_seed(0)
    model = MLPReward().build()
    with torch.no_grad():
        out = AdaptivePrefConfig(tau_max=3.0).evaluate(model, source.val_batches()[0])
    for k in range(1, 6):
        assert out[f"tau_q{k}"][1] == 40 and f"abs_margin_q{k}" in out
    assert "policy_value_b1" in out and "best_of_n" in out


def test_raw_reward_when_not_standardized():
    raw = build(standardize=False)
    assert raw.reward.scale == 1.0 and abs(float(raw.delta.std()) - 1.0) > 1e-3
    assert torch.equal(raw.chosen, build().chosen)  # the same environment, only the reward's units differ


def test_tabular_items_are_one_hot_with_evenly_spaced_rewards():
    """adaptive_pref §5.1 C: 40 items, rewards -3 ... 3; a reward model without hidden layers is a table."""
    source = PreferenceFeaturesData(**SMALL, truth="tabular", dim=40, standardize=False, n_train=500,
                                    corruption="stochastic", temperature=1.0).build(0)
    assert torch.equal(source.chosen.sum(-1), torch.ones(500, 1))
    assert torch.allclose(source.reward(torch.eye(40, dtype=torch.float64)[:, None]), torch.linspace(-3, 3, 40, dtype=torch.float64))
    distinct = source.delta != 0  # a pair of one item twice has no true preference
    assert torch.equal(source.flipped[distinct], true_flips(source)[distinct]) and source.flipped.any()
    table = MLPReward(input_dim=40, hidden_sizes=[]).build()
    assert sum(p.numel() for p in table.parameters()) == 41
    val = source.val_batches()[0]
    assert torch.allclose(val["true_margin"].double(), (source.reward(val["chosen_features"].double())
                                                        - source.reward(val["rejected_features"].double())).abs(), atol=1e-6)


def test_calibration_error_matches_torchmetrics_and_uses_aps_tau():
    """ECE as the official APS rm_test computes it: torchmetrics' BinaryCalibrationError(n_bins=15, norm='l1')
    on p and 1 - p with targets 1 and 0 (an independent implementation)."""
    from torchmetrics.classification import BinaryCalibrationError

    from methods.adaptive_pref import AdaptivePrefConfig
    from methods.preference_metrics import calibration_error

    p = torch.cat([torch.rand(500, generator=torch.Generator().manual_seed(0)), torch.tensor([0.0, 1.0, 0.5])])
    ref = BinaryCalibrationError(n_bins=15, norm="l1")(torch.cat([p, 1 - p]), torch.cat([torch.ones_like(p), torch.zeros_like(p)]))
    assert abs(calibration_error(p).item() - ref.item()) < 1e-6
    assert calibration_error(torch.ones(10)).item() == 0.0  # certain and right: calibrated
    source = PreferenceFeaturesData(n_train=64, test_pairs=256, test_items=64).build(0)
    model = MLPReward().build()
    aps = AdaptivePrefConfig(solver="closed_form")
    with torch.no_grad():
        out = aps.evaluate(model, source.val_batches()[0])
        x = model(source.val_batches()[0]["chosen_features"]) - model(source.val_batches()[0]["rejected_features"])
    expect = calibration_error(torch.sigmoid(x / aps.tau(x)))
    assert abs(out["ece"][0].item() - expect.item()) < 1e-12 and out["ece"][1].item() == 1.0
