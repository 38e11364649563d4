"""Generation with sampling (runners/generate/sampling.py) and its disk cache (gencache.py)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from reprolab.checks import ConfigError, UserError
from runners.generate import sampling as sampling_mod
from runners.generate.gencache import GenerationCache
from runners.generate.sampling import Sampling, generate, next_tokens, row_generators, row_seed
from tests.gear.conftest import tiny_llama

PROMPTS = [[1, 5, 9, 3], [7, 2], [4, 4, 8, 1, 6, 11]]
RIGHT_FILTER = sampling_mod.filtered_logits
LOGITS = torch.tensor([3.0, 2.5, 2.2, 1.8, 1.5, 1.1, 0.7, 0.3, 0.0, -0.5, -1.0, -2.0])


@pytest.fixture(scope="module")
def model():
    return tiny_llama(vocab=64)


def forward_counter(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


# ---- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    (dict(temperature=0), "runner.sampling.temperature=0 is out of range: it must be > 0"),
    (dict(temperature=-0.5), "runner.sampling.temperature=-0.5 is out of range"),
    (dict(top_p=0.0), r"runner.sampling.top_p=0.0 is out of range: it must be in \(0.0, 1.0\]"),
    (dict(top_p=1.5), "runner.sampling.top_p=1.5 is out of range"),
    (dict(top_k=-1), "runner.sampling.top_k=-1 is out of range: it must be >= 0"),
    (dict(num_samples=0, do_sample=True), "runner.sampling.num_samples=0 is out of range"),
    (dict(max_new_tokens=0), "runner.sampling.max_new_tokens=0 is out of range"),
    (dict(num_samples=4), "runner.sampling.num_samples=4 with runner.sampling.do_sample=false"),
])
def test_bad_settings_name_the_key(kw, message):
    with pytest.raises(ConfigError, match=message):
        Sampling(**kw)


def test_generate_needs_a_token_budget_and_prompts(model):
    with pytest.raises(ConfigError, match="runner.sampling.max_new_tokens is unset"):
        generate(model, PROMPTS, Sampling(), pad_id=0)
    with pytest.raises(UserError, match="prompt 1 is empty"):
        generate(model, [[1, 2], []], Sampling(max_new_tokens=2), pad_id=0)


def test_row_seeds_depend_on_seed_prompt_and_sample_only():
    assert row_seed(0, 1, 2) == row_seed(0, 1, 2)
    assert len({row_seed(s, i, j) for s in range(3) for i in range(3) for j in range(3)}) == 27


# ---- choosing a token ----------------------------------------------------------------------------
def test_greedy_is_argmax_and_so_is_top_k_1():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(next_tokens(logits, Sampling()), logits.argmax(-1))
    top1 = Sampling(do_sample=True, temperature=0.7, top_k=1)
    assert torch.equal(next_tokens(logits, top1, row_generators(0, [(i, 0) for i in range(6)])), logits.argmax(-1))


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 0, 1.0), (1.0, 10, 1.0), (1.3, 0, 0.9), (0.5, 20, 0.8),
                                                     (2.0, 5, 0.3)])
def test_filtering_agrees_with_the_transformers_warpers(temperature, top_k, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = 3 * torch.randn(8, 100, generator=torch.Generator().manual_seed(1))
    ref = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        ref = TopKLogitsWarper(top_k)(None, ref)
    if top_p < 1.0:
        ref = TopPLogitsWarper(top_p)(None, ref)
    ours = sampling_mod.filtered_logits(logits, Sampling(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p))
    assert torch.equal(ours.isinf(), ref.isinf())
    assert ours.isinf().any() == ((top_k, top_p) != (0, 1.0))  # each filtering case drops something
    torch.testing.assert_close(ours[ours.isfinite()], ref[ref.isfinite()])


def expected_distribution(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> dict[int, float]:
    """The reference rule written out: softmax(logits / T); keep the top k, renormalise; keep the
    smallest most-likely prefix whose mass >= top_p (the top token always), renormalise."""
    probs = torch.softmax(logits.double() / temperature, -1).tolist()
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    if top_k:
        order = order[:top_k]
    total = sum(probs[i] for i in order)
    kept, mass = [], 0.0
    for i in order:
        kept.append(i)
        mass += probs[i] / total
        if mass >= top_p:
            break
    total = sum(probs[i] for i in kept)
    return {i: probs[i] / total for i in kept}


def draw_counts(sampling: Sampling, n: int = 20000) -> list[int]:
    rows = [(0, j) for j in range(n)]
    tokens = next_tokens(LOGITS.expand(n, -1), sampling, row_generators(sampling.seed, rows))
    return torch.bincount(tokens, minlength=LOGITS.numel()).tolist()


def matches(counts: list[int], expected: dict[int, float], z: float = 5.0) -> bool:
    """No draw outside the support, and Pearson's chi-square below its (1 - 3e-7) quantile
    (Wilson-Hilferty approximation, df = support size - 1)."""
    n = sum(counts)
    if any(c for i, c in enumerate(counts) if i not in expected):
        return False
    chi2 = sum((counts[i] - n * p) ** 2 / (n * p) for i, p in expected.items())
    df = max(len(expected) - 1, 1)
    bound = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return chi2 < bound


CASES = [dict(temperature=0.7), dict(temperature=1.0, top_k=5), dict(temperature=1.3, top_p=0.8),
         dict(temperature=1.3, top_k=5, top_p=0.65)]


@pytest.mark.parametrize("case", CASES)
def test_draws_follow_the_filtered_softmax(case):
    s = Sampling(do_sample=True, seed=1, **case)
    expected = expected_distribution(LOGITS, s.temperature, s.top_k, s.top_p)
    assert matches(draw_counts(s), expected)


def _wrong_tail(logits, s):  # drops the token that crosses top_p (keeps mass < p, not the smallest set >= p)
    scores = logits.float() / s.temperature
    sorted_scores, order = torch.sort(scores, -1, descending=True)
    drop = sorted_scores.softmax(-1).cumsum(-1) >= s.top_p
    drop[..., 0] = False
    return scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def _nucleus_before_temperature(logits, s):
    nucleus = RIGHT_FILTER(logits, Sampling(do_sample=True, top_p=s.top_p))
    return (logits.float() / s.temperature).masked_fill(nucleus.isinf(), float("-inf"))


def _nucleus_not_renormalised_after_top_k(logits, s):  # top-p mass measured on the full softmax
    scores = logits.float() / s.temperature
    kth = torch.topk(scores, s.top_k, -1).values[..., -1:]
    probs = scores.softmax(-1)
    sorted_probs, order = torch.sort(probs.masked_fill(scores < kth, 0), -1, descending=True)
    drop = (sorted_probs.cumsum(-1) - sorted_probs) >= s.top_p
    drop[..., 0] = False
    return scores.masked_fill((scores < kth) | drop.scatter(-1, order, drop), float("-inf"))


@pytest.mark.parametrize("wrong, case", [(_wrong_tail, CASES[2]), (_nucleus_before_temperature, CASES[2]),
                                         (_nucleus_not_renormalised_after_top_k, CASES[3])])
def test_the_distribution_check_rejects_wrong_rules(monkeypatch, wrong, case):
    """The bound above has power: a sampler with one of these mistakes fails it."""
    s = Sampling(do_sample=True, seed=1, **case)
    right = expected_distribution(LOGITS, s.temperature, s.top_k, s.top_p)
    monkeypatch.setattr(sampling_mod, "filtered_logits", wrong)
    assert not matches(draw_counts(s), right)


def test_a_dropped_token_is_never_drawn_whatever_the_rounding(monkeypatch):
    """u as close to 1 as a double gets: the cdf lookup must still stop at a kept token."""
    logits = torch.tensor([[0.0, 0.0, float("-inf")]]).expand(4, -1)
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([1.0 - 2**-53], dtype=torch.float64))
    assert next_tokens(logits, Sampling(do_sample=True), row_generators(0, [(i, 0) for i in range(4)])).tolist() == [1] * 4


# ---- generating with a model ---------------------------------------------------------------------
def replay(model, prompt, sampling, i, j, length):
    """Sample (i, j) decoded one prompt at a time without a KV cache (full forward per token)."""
    gen = [torch.Generator().manual_seed(row_seed(sampling.seed, i, j))]
    seq = []
    with torch.no_grad():
        for _ in range(length):
            logits = model(input_ids=torch.tensor([prompt + seq])).logits[:, -1].float()
            seq.append(int(next_tokens(logits, sampling, gen)[0]))
    return seq


def test_greedy_generation_matches_argmax_decoding_without_a_cache(model):
    greedy = generate(model, PROMPTS, Sampling(max_new_tokens=5), pad_id=0, batch_size=2)
    top1 = generate(model, PROMPTS, Sampling(do_sample=True, top_k=1, max_new_tokens=5), pad_id=0, batch_size=3)
    assert greedy.tokens == top1.tokens
    for i, p in enumerate(PROMPTS):
        assert greedy.tokens[i] == [replay(model, p, Sampling(), i, 0, 5)]
    assert greedy.new_tokens == 15 and greedy.tokens_per_s > 0 and not greedy.cached


SAMPLED = Sampling(do_sample=True, temperature=0.9, top_k=40, top_p=0.95, num_samples=4, max_new_tokens=6, seed=3)


def test_n_samples_per_prompt_follow_the_model(model):
    out = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=5)
    assert [len(per_prompt) for per_prompt in out.tokens] == [4, 4, 4]
    assert all(len(seq) == 6 for per_prompt in out.tokens for seq in per_prompt)
    assert all(len({tuple(s) for s in per_prompt}) > 1 for per_prompt in out.tokens)  # samples differ
    for i, j in [(0, 0), (1, 3), (2, 2)]:  # the batched, cached, left-padded path = one prompt, no cache
        assert out.tokens[i][j] == replay(model, PROMPTS[i], SAMPLED, i, j, 6)


def test_samples_do_not_depend_on_the_batch_size_but_on_the_seed(model):
    one = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=1)
    five = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=5)
    assert one.tokens == five.tokens
    other = generate(model, PROMPTS, Sampling(**{**SAMPLED.__dict__, "seed": 4}), pad_id=0, batch_size=5)
    assert other.tokens != five.tokens


def test_eos_stops_a_row(model):
    free = generate(model, PROMPTS, Sampling(max_new_tokens=8), pad_id=0)
    eos = free.tokens[0][0][2]
    stopped = generate(model, PROMPTS, Sampling(max_new_tokens=8), pad_id=0, eos_id=eos)
    for full, (seq,) in zip((f[0] for f in free.tokens), stopped.tokens):
        assert seq == (full[: full.index(eos) + 1] if eos in full else full)
    assert len(stopped.tokens[0][0]) <= 3


def _fp16_plugin():
    """The fp16 KV-cache plugin (found by module, whatever its class is called)."""
    from methods.fp16 import config

    cls = next(v for v in vars(config).values()
               if isinstance(v, type) and v.__module__ == config.__name__ and hasattr(v, "make_cache"))
    return cls()


def test_a_cache_plugin_through_make_cache(model):
    plugin, made = _fp16_plugin(), []

    def make_cache():
        made.append(1)
        return plugin.make_cache(model.config)

    plain = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=4)
    via_plugin = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=4, make_cache=make_cache)
    assert via_plugin.tokens == plain.tokens and len(made) == 3  # 12 rows in batches of 4


def test_logits_hook_runs_before_the_choice(model):
    seen = []

    def hook(logits):
        seen.append(logits.shape)
        return -logits  # greedy now picks the least likely token

    out = generate(model, PROMPTS[:1], Sampling(max_new_tokens=1), pad_id=0, logits_hook=hook)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(PROMPTS[:1])).logits[0, -1]
    assert out.tokens == [[[int(logits.argmin())]]] and seen == [torch.Size([1, 64])]


# ---- the disk cache ------------------------------------------------------------------------------
def test_disk_cache_hits_without_calling_the_model(model, tmp_path):
    cache = GenerationCache(tmp_path / "gens")
    first = generate(model, PROMPTS, SAMPLED, pad_id=0, cache=cache, fingerprint="tiny:0")
    files = list((tmp_path / "gens").glob("generations-*.json"))
    assert len(files) == 1 and not first.cached
    stored = json.loads(files[0].read_text())
    assert stored["sampling"]["temperature"] == 0.9 and stored["fingerprint"] == "tiny:0"
    calls, handle = forward_counter(model)
    try:
        again = generate(model, PROMPTS, SAMPLED, pad_id=0, batch_size=1, cache=cache, fingerprint="tiny:0")
        assert calls == [] and again.cached and again.tokens == first.tokens
        assert again.new_tokens == first.new_tokens and again.seconds == first.seconds
        other = generate(model, PROMPTS, Sampling(**{**SAMPLED.__dict__, "seed": 9}), pad_id=0, cache=cache,
                         fingerprint="tiny:0")
        assert calls and not other.cached
    finally:
        handle.remove()
    with pytest.raises(UserError, match="needs fingerprint="):
        generate(model, PROMPTS, SAMPLED, pad_id=0, cache=cache)


def test_disk_cache_key_changes_with_every_setting(tmp_path):
    cache = GenerationCache(tmp_path)
    base = dict(SAMPLED.__dict__)
    keys = {cache.key("m", PROMPTS, SAMPLED, None), cache.key("m", PROMPTS, SAMPLED, 2),
            cache.key("other", PROMPTS, SAMPLED, None), cache.key("m", PROMPTS[:2], SAMPLED, None),
            cache.key("m", [[1, 5, 9, 4], *PROMPTS[1:]], SAMPLED, None)}
    changes = dict(temperature=0.8, top_k=41, top_p=0.9, num_samples=3, max_new_tokens=7, seed=4)
    keys |= {cache.key("m", PROMPTS, Sampling(**{**base, k: v}), None) for k, v in changes.items()}
    assert len(keys) == 5 + len(changes)
    assert cache.key("m", PROMPTS, Sampling(**base), None) == cache.key("m", PROMPTS, SAMPLED, None)


def test_disk_cache_refuses_a_truncated_or_corrupt_file(model, tmp_path):
    cache = GenerationCache(tmp_path)
    small = Sampling(do_sample=True, num_samples=2, max_new_tokens=3)
    generate(model, PROMPTS, small, pad_id=0, cache=cache, fingerprint="tiny:0")
    (path,) = tmp_path.glob("generations-*.json")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(UserError, match=f"{path.name} is truncated or corrupt.*delete it"):
        generate(model, PROMPTS, small, pad_id=0, cache=cache, fingerprint="tiny:0")
    data = json.loads(text)
    data["tokens"][0][0][0] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"{path.name}: its tokens do not match their checksum"):
        generate(model, PROMPTS, small, pad_id=0, cache=cache, fingerprint="tiny:0")
    path.write_text(text.replace(data["key"], "0" * 64))
    with pytest.raises(UserError, match=f"{path.name} is not a format-1 file for key"):
        generate(model, PROMPTS, small, pad_id=0, cache=cache, fingerprint="tiny:0")


# ---- the generate runner -------------------------------------------------------------------------
GEN = ["~experiment", "runner=generate", "model=llama_tiny", "logger=csv", "cpu_threads=1", "method=fp16",
       "runner.task.num_pairs=4", "runner.task.num_examples=3", "runner.batch_size=2"]


def test_the_generate_runner_samples_alike_in_the_free_run_and_its_reference(run_job):
    """A lossless cache with the same per-example draws as the fp16 reference agrees with it exactly
    (a greedy reference against a sampled free run would not, on a near-uniform random model)."""
    results, _ = run_job(GEN + ["runner.sampling.do_sample=true", "runner.sampling.temperature=2.0",
                                "runner.sampling.max_new_tokens=5"])
    assert results["table/agreement"] == 1.0 and results["table/kl"] == pytest.approx(0, abs=1e-6)
    assert results["table/tokens_per_s"] > 0


@pytest.mark.parametrize("override, message", [
    ("runner.sampling.temperature=0", "runner.sampling.temperature=0.0 is out of range: it must be > 0"),
    ("runner.sampling.top_p=1.5", "runner.sampling.top_p=1.5 is out of range"),
])
def test_the_generate_runner_refuses_bad_sampling(run_job, override, message):
    with pytest.raises(ConfigError, match=message):
        run_job(GEN + [override])


def test_the_generate_runner_scores_one_sample_per_example(run_job):
    with pytest.raises(ConfigError, match="runner.sampling.num_samples=2: the generate runner scores one generation"):
        run_job(GEN + ["runner.sampling.do_sample=true", "runner.sampling.num_samples=2"])
