"""The window-MLP causal LM (`reprolab.models.window_mlp`, model=mlp_window), the DFT toy prototype's base: causal,
window W respected, padding skipped, cached decoding (left padding, crop, batch_repeat_interleave) equal to the full
forward, batched sampling equal to one row at a time, DFT's reference cache, and a crashed run that resumes."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from reprolab.checks import ConfigError
from reprolab.models.config import CausalLM

V = 11


def window_mlp(window=3, hidden=16, layers=2, vocab=V, seed=0):
    torch.manual_seed(seed)
    return CausalLM(arch="window_mlp", hidden_size=hidden, num_layers=layers, window=window).build(vocab)


def logits(model, ids, mask=None):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def test_the_config_builds_the_prototype_sizes_and_refuses_what_it_cannot_be():
    model = CausalLM(arch="window_mlp", hidden_size=256, num_layers=2, window=8).build(9)
    # the first layer is Linear(8 slots x 9 tokens, 256) stored as a (9, 8 * 256) table; one more 256 x 256; the head
    assert model.embed_tokens.weight.shape == (9, 8 * 256) and len(model.layers) == 1
    assert sum(p.numel() for p in model.parameters()) == 9 * 8 * 256 + 256 + 256 * 257 + 257 * 9
    assert model.config.vocab_size == 9 and model.get_output_embeddings() is model.lm_head
    for bad in ({"pretrained": True, "hf_id": "x"}, {"reward_head": True}):
        with pytest.raises(ConfigError, match="window_mlp"):
            CausalLM(arch="window_mlp", **bad)
    with pytest.raises(ConfigError, match="model.window"):
        CausalLM(arch="window_mlp", window=0)


def test_it_is_an_mlp_over_the_one_hot_window():
    """Position t's logits = head(relu(L2(relu(W1 [onehot(x_t), onehot(x_t-1), onehot(x_t-2)] + b)))), zeros before
    the start: the (V, W * d) table is W1 read slot by slot."""
    model, w, d = window_mlp(window=3, hidden=16), 3, 16
    ids = torch.tensor([[3, 7, 1, 9, 4]])
    w1 = model.embed_tokens.weight.view(V, w, d).permute(2, 1, 0).reshape(d, w * V)  # column (slot k, token v)
    for t in range(ids.shape[1]):
        x = torch.zeros(w, V)
        for k in range(min(w, t + 1)):
            x[k, ids[0, t - k]] = 1.0
        h = torch.relu(w1 @ x.flatten() + model.bias)
        want = model.lm_head(torch.relu(model.layers[0](h)))
        torch.testing.assert_close(logits(model, ids)[0, t], want, rtol=1e-5, atol=1e-6)


def test_causal_and_the_window_is_respected():
    model, w = window_mlp(window=3), 3
    ids = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(1))
    base = logits(model, ids)
    for j in range(ids.shape[1]):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        out = logits(model, changed)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=0)  # no earlier logit moves
        moved = (out - base).abs().amax(dim=(0, 2)) > 1e-6
        assert moved[j : j + w].all() and not moved[j + w :].any()  # exactly the W positions that see it


def test_masked_tokens_are_skipped_as_if_absent():
    """A left-padded row, and a row with padding inside (a right-padded prompt continued by its answer), give
    the logits of the row alone at every attended position."""
    model = window_mlp(window=4)
    row = torch.tensor([5, 2, 8, 1, 6, 3])
    alone = logits(model, row[None])[0]
    left = torch.cat([torch.tensor([0, 0, 0]), row])[None]
    torch.testing.assert_close(logits(model, left, (left != 0) | (torch.arange(9) >= 3))[0, 3:], alone)
    inside = torch.tensor([[5, 2, 8, 0, 0, 1, 6, 3]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 1]])
    keep = mask[0].bool()
    torch.testing.assert_close(logits(model, inside, mask)[0, keep], alone)


def test_cached_decoding_equals_the_full_forward():
    """Prefill a left-padded batch, step token by token (runners.generate.decode.Stepper), then crop back to the
    prompts and repeat each row 3 times (DFT's continuation): every logit equals one forward of the row alone."""
    from runners.generate.decode import Stepper, left_pad

    model = window_mlp(window=3)
    prompts, steps = [[4, 2, 9, 1], [7], [3, 3, 5]], [[1, 2, 3], [10, 0, 6], [5, 4, 8]]
    ids, mask = left_pad(prompts, 0, "cpu")
    with torch.no_grad():
        s = Stepper(model, DynamicCache(config=model.config), ids, mask)
        got = [s.logits]
        for i in range(3):
            got.append(s.step(torch.tensor([row[i] for row in steps])))
    for r, (p, more) in enumerate(zip(prompts, steps)):
        full = logits(model, torch.tensor([p + more]))[0]
        torch.testing.assert_close(torch.stack([g[r] for g in got]), full[len(p) - 1 :], rtol=1e-5, atol=1e-6)
    cache = s.cache
    assert cache.get_seq_length() == ids.shape[1] + 3
    cache.crop(ids.shape[1] - cache.get_seq_length())
    cache.batch_repeat_interleave(3)
    new = torch.tensor([[1, 2], [3, 4], [5, 6]] * 3).view(3, 3, 2).transpose(0, 1).reshape(9, 2)  # 3 per prompt
    with torch.no_grad():
        out = model(input_ids=new, attention_mask=torch.cat([mask.repeat_interleave(3, 0), torch.ones(9, 2).long()], 1),
                    cache=cache, use_cache=True).logits
    for r in range(9):
        full = logits(model, torch.tensor([prompts[r // 3] + new[r].tolist()]))[0, -2:]
        torch.testing.assert_close(out[r], full, rtol=1e-5, atol=1e-6)


def test_batched_sampling_with_left_padding_equals_one_row_at_a_time():
    from runners.generate.sampling import Sampling, generate

    model = window_mlp(window=3).eval()
    prompts = [[1, 2, 3, 4], [5], [6, 7], [8, 9, 10, 1, 2]]
    sampling = Sampling(do_sample=True, temperature=0.7, num_samples=3, max_new_tokens=5, seed=4)
    batched = generate(model, prompts, sampling, pad_id=0, batch_size=12)
    alone = generate(model, prompts, sampling, pad_id=0, batch_size=1)
    assert batched.tokens == alone.tokens and batched.new_tokens == 4 * 3 * 5


@pytest.mark.parametrize("window", [2, 8])
def test_dft_shared_prompt_forward_equals_one_forward_per_sequence(window):
    """methods.dft.objective.positive_and_negative_logps (each prompt forwarded once, the answers continue its
    cache) gives the log-probs and gradients of one forward per sequence with this model too."""
    from tests.dft.test_data import check_shared_prompt_forward

    check_shared_prompt_forward(window_mlp(window=window, vocab=20))


def test_the_reference_cache_of_the_toy_holds_the_base_models_log_probs(tmp_path):
    from methods.dft.data_config import DFTToyData
    from methods.dft.objective import reference_logps_of_negatives

    model = window_mlp(window=8, vocab=9)
    source = DFTToyData(batch_size=8, num_negatives=4, cache_dir=str(tmp_path)).build(0)
    source.prepare(model)
    assert len(list(tmp_path.glob("negatives-*.pt"))) == 1
    for index in (0, 5):
        batch = next(source.train_batches(index, 0, 1))
        torch.testing.assert_close(batch["neg_ref_logps"], reference_logps_of_negatives(model, batch), rtol=1e-5,
                                   atol=1e-5)


def test_a_crashed_dft_run_from_a_window_mlp_base_resumes_to_the_same_result(run_job, tmp_path, monkeypatch):
    """The lm runner end to end: a base pretrained (experiment=dft_toy_mlp_base, shortened), DFT from it
    (runner.init_from), crashed after its step-4 checkpoint and resumed: the losses, the log-u table and the
    final metrics of an uninterrupted run."""
    from reprolab import checkpoint
    from tests.test_faults import _by_step, _crash_at, _rows

    quiet = ["logger=csv", "trainer.enable_progress_bar=false", "cpu_threads=1"]
    runs = tmp_path / "runs"
    _, job = run_job(["experiment=dft_toy_mlp_base", "trainer.max_steps=30", "trainer.val_check_interval=30", *quiet],
                     log_dir=runs)
    base = job.output_dir.rename(runs / "dft_toy_mlp_base" / "seed=0")  # where experiments.dft.toy_base looks
    dft = ["experiment=dft_toy_mlp", f"runner.init_from='{base}'", "trainer.max_steps=8",
           "trainer.val_check_interval=4", "runner.checkpoint_every=4", "trainer.log_every_n_steps=1",
           "data.batch_size=16", f"data.cache_dir={runs / 'cache' / 'dft_negatives_mlp'}", *quiet]
    straight, job = run_job(dft, log_dir=tmp_path / "straight")
    _crash_at(monkeypatch, 6)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(dft, log_dir=tmp_path / "resumed")
    resumed, job2 = run_job(dft, log_dir=tmp_path / "resumed")
    assert resumed["train/steps"] == 8 and resumed["table/val_margin"] == pytest.approx(straight["table/val_margin"])
    assert resumed["table/val_exact_match"] == straight["table/val_exact_match"]
    a, b = _by_step(_rows(job.output_dir)), _by_step(_rows(job2.output_dir))
    assert sorted(a) == sorted(b)
    for key, row in a.items():
        assert float(row.get("train/loss") or 0) == pytest.approx(float(b[key].get("train/loss") or 0), rel=1e-5)
    one, two = (checkpoint.load(j.output_dir / "checkpoints" / "last.ckpt")["objective"] for j in (job, job2))
    assert one["u_mask"].sum() > 0
    torch.testing.assert_close(one["log_u"], two["log_u"], rtol=0, atol=1e-6)


def test_the_toy_reports_read_the_mlp_base_and_its_runs(run_job, tmp_path):
    """experiments.dft.toy_base --experiment/--cache writes toy_mlp_base.md from the MLP base and its negatives;
    toy_curves leaves the MLP base out of the row names as it does the transformer's."""
    from experiments.dft import toy_base
    from experiments.dft.toy_curves import row_name
    from methods.dft.data_config import DFTToyData
    from runners.generate.model import load_weights

    runs = tmp_path / "runs"
    _, job = run_job(["experiment=dft_toy_mlp_base", "trainer.max_steps=5", "trainer.val_check_interval=5",
                      "logger=csv", "trainer.enable_progress_bar=false"], log_dir=runs)
    base = job.output_dir.rename(runs / "dft_toy_mlp_base" / "seed=0")
    model = window_mlp(window=8, hidden=256, vocab=9)
    load_weights(model, str(base), "test")
    DFTToyData(cache_dir=str(runs / "cache" / "dft_negatives_mlp")).build(0).prepare(model)
    toy_base.main(["--runs", str(runs), "--out", str(tmp_path), "--experiment", "dft_toy_mlp_base",
                   "--cache", "dft_negatives_mlp"])
    text = (tmp_path / "toy_mlp_base.md").read_text()
    assert "experiment=dft_toy_mlp_base, seed 0" in text and "| 8 | 0.7 | 0 |" in text
    assert not (tmp_path / "toy_base.md").exists()
    key = "objective=dft,runner.init_from='logs/dft_toy_mlp_base/seed=0',seed=2"
    assert row_name({"choices": {"objective": "dft"}, "key": key}) == "dft"
