"""A causal LM with a scalar head as the reward model (``model.reward_head=true``, ``objective.margin=lm_reward``):
the last non-pad token under left and right padding, gradients, the BT / R3M / APS losses on it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from methods.adaptive_pref import AdaptivePrefConfig
from methods.bt import BTConfig
from methods.preference import full_sequences, lm_reward_margins
from methods.r3m import R3MConfig
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceMarkovData
from reprolab.models.config import CausalLM
from reprolab.models.reward import LMRewardModel, last_token_index

VOCAB = 32


def reward_model(arch="llama", seed=0):
    torch.manual_seed(seed)
    return CausalLM(arch=arch, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, reward_head=True).build(VOCAB)


def padded(rows, side):
    """Rows of different lengths padded (with token 7, a real token id, so only the mask can tell) on ``side``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), 7)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        s = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, s], mask[i, s] = torch.tensor(r), 1
    return ids, mask


def test_last_token_index_for_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4]
    with pytest.raises(ValueError, match="has no token"):
        last_token_index(torch.tensor([[1, 0], [0, 0]]))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_reward_is_the_same_alone_and_left_or_right_padded(arch):
    model = reward_model(arch).eval()
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (5, 9, 3)]
    with torch.no_grad():
        alone = torch.stack([model(input_ids=torch.tensor([r]))[0] for r in rows])
        for side in ("left", "right"):
            ids, mask = padded(rows, side)
            torch.testing.assert_close(model(input_ids=ids, attention_mask=mask), alone, atol=1e-5, rtol=1e-5)


def test_reward_reads_the_last_real_token_and_ignores_pads():
    model = reward_model().eval()
    ids, mask = padded([[1, 2, 3, 4], [5, 6]], "right")
    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask)
        pads = ids.clone()
        pads[1, 2:] = 11
        assert torch.equal(model(input_ids=pads, attention_mask=mask), base)
        last = ids.clone()
        last[1, 1] = 12
        changed = model(input_ids=last, attention_mask=mask)
    assert changed[0] == base[0] and changed[1] != base[1]


def test_gradients_reach_the_head_and_every_backbone_layer():
    model = reward_model()
    ids, mask = padded([[1, 2, 3, 4], [5, 6]], "left")
    model(input_ids=ids, attention_mask=mask).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_causal_lm_checkpoint_initialises_the_backbone():
    torch.manual_seed(3)
    lm = CausalLM(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4).build(VOCAB)
    model = reward_model()
    head = model.score.weight.detach().clone()
    model.load_state_dict(lm.state_dict())
    assert torch.equal(model.model.embed_tokens.weight, lm.model.embed_tokens.weight)
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, lm.model.layers[1].mlp.up_proj.weight)
    assert torch.equal(model.score.weight, head)
    assert isinstance(model, LMRewardModel) and model.get_output_embeddings() is None


def test_full_sequences_restore_the_last_token_of_every_padding():
    seq = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    labels = seq[:, 1:].clone()
    labels[:, :1] = -100
    ids, mask = full_sequences(seq[:, :-1], labels)  # full rows: the last label comes back
    assert torch.equal(ids, seq) and mask.all()
    right = torch.tensor([[1, 2, 3, 0]])  # 3 tokens + a pad: all in input_ids, the appended column masked
    ids, mask = full_sequences(right, torch.tensor([[-100, 3, -100, -100]]), torch.tensor([[1, 1, 1, 0]]))
    assert mask.tolist() == [[1, 1, 1, 0, 0]] and last_token_index(mask).item() == 2


def _markov_batch():
    return next(PreferenceMarkovData(vocab_size=VOCAB, batch_size=5, prompt_len=4, response_len=6).build(0)
                .train_batches(0, 0, 1))


@pytest.mark.parametrize("objective", [BTConfig(margin="lm_reward"), R3MConfig(margin="lm_reward"),
                                       AdaptivePrefConfig(margin="lm_reward", solver="closed_form", loss_eps=0.0)])
def test_pairwise_losses_on_the_lm_reward_margin(objective):
    """The margin is r(whole chosen sequence) - r(whole rejected one), each scored alone; BT's loss on it
    is -log sigmoid(d) (R3M and APS are checked against BT/closed forms elsewhere: here, that they train)."""
    model = reward_model()
    batch = _markov_batch()
    d = lm_reward_margins(model, batch)
    whole = lambda name: torch.cat([batch[f"{name}_input_ids"], batch[f"{name}_labels"][:, -1:]], 1)  # noqa: E731
    with torch.no_grad():
        expect = model(input_ids=whole("chosen")) - model(input_ids=whole("rejected"))
    torch.testing.assert_close(d.detach(), expect)
    assert objective.data_kind == "preference" and not objective.needs_reference
    out = objective.loss(model, batch)
    if isinstance(objective, BTConfig):
        torch.testing.assert_close(out["loss"], -F.logsigmoid(expect).mean(), atol=1e-6, rtol=1e-6)
    out["loss"].backward()
    assert model.score.weight.grad.abs().sum() > 0 and model.model.embed_tokens.weight.grad.abs().sum() > 0


def test_a_reward_model_run_composes_and_trains(run_job):
    from tests.conftest import TINY

    results, _ = run_job(["model=llama_tiny_reward", "data=preference_markov", "objective=bt",
                          "objective.margin=lm_reward", *TINY])
    assert 0.0 <= results["table/val_reward_acc"] <= 1.0 and results["table/val_loss"] > 0
