"""An lm-evaluation-harness model adapter for any causal LM of reprolab, with its role hooks in place:
a model carrying a temperature (TempNet, a global tau) is scored with its logits divided by tau, as it
decodes. ``pip install '.[eval]'`` (lm-eval 0.4.13 tested).

    from reprolab.lmeval import ReprolabLM, evaluate
    results = evaluate(model, tokenizer, tasks=["piqa", "hellaswag", "arc_easy", "arc_challenge",
                                                "openbookqa", "lambada_openai", "wikitext"])

``ReprolabLM`` implements the harness's three requests with the model's own forward (one request at a
time, the context cut from the left to the model's window): ``loglikelihood`` (sum of the continuation's
token log-probs and whether greedy decoding would produce it), ``loglikelihood_rolling`` (the whole
text, in windows that each predict ``max_length`` new tokens with the previous tokens as context; the
first token is predicted from the tokenizer's BOS when it has one, else it is not scored) and
``generate_until`` (greedy, stopped at any of ``until`` or ``max_gen_toks``). The tokenizer is any of
`reprolab.data.tokenizers` (``encode``/``decode``; an HF id, ``byte``).
"""
from __future__ import annotations

import torch
from lm_eval.api.model import LM


class ReprolabLM(LM):
    def __init__(self, model: torch.nn.Module, tokenizer, device: str = "cpu", max_length: int | None = None,
                 max_gen_toks: int = 256):
        super().__init__()
        self.model = model.eval().to(device)
        self.tok, self._device, self.max_gen_toks = tokenizer, torch.device(device), max_gen_toks
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
        hf = getattr(tokenizer, "tok", None)
        self.bos = getattr(hf, "bos_token_id", None) if hf is not None else None

    @property
    def device(self):
        return self._device

    @torch.no_grad()
    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        """log p(ids[t+1] | ids[:t+1]) for t < len - 1, and the argmax tokens: ``(len - 1, 2)`` as (logp, argmax)."""
        x = torch.tensor([ids], device=self._device)
        logits = self.model(input_ids=x).logits[0, :-1].float()
        logp = torch.log_softmax(logits, -1)
        target = x[0, 1:]
        return logp.gather(-1, target[:, None])[:, 0], logits.argmax(-1) == target

    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        ids = (context + continuation)[-(self.max_length + 1):]
        n = len(continuation)
        logp, greedy = self._logprobs(ids)
        return float(logp[-n:].sum()), bool(greedy[-n:].all())

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            context, continuation = req.args
            # the harness's convention: trailing spaces of the context belong to the continuation
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole, ctx = self.tok.encode(context + continuation), self.tok.encode(context)
            if not ctx:  # an empty context: condition on BOS (or score all but the first token)
                ctx, whole = ([self.bos], [self.bos] + whole) if self.bos is not None else (whole[:1], whole)
            out.append(self._score(whole[: len(ctx)], whole[len(ctx):]))
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        out = []
        for req in requests:
            ids = self.tok.encode(req.args[0])
            ids = [self.bos] + ids if self.bos is not None else ids
            total, start = 0.0, 1
            while start < len(ids):  # windows of max_length predicted tokens, each with the tokens before as context
                end = min(start + self.max_length, len(ids))
                logp, _ = self._logprobs(ids[max(0, end - self.max_length - 1) : end])
                total += float(logp[-(end - start):].sum())
                start = end
            out.append(total)
        return out

    @torch.no_grad()
    def generate_until(self, requests) -> list[str]:
        out = []
        for req in requests:
            context, kwargs = req.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else until
            ids = self.tok.encode(context)[-self.max_length:]
            new: list[int] = []
            for _ in range(int(kwargs.get("max_gen_toks", self.max_gen_toks))):
                x = torch.tensor([(ids + new)[-self.max_length:]], device=self._device)
                nxt = int(self.model(input_ids=x).logits[0, -1].argmax())
                if nxt == getattr(self.tok, "eos_id", None):
                    break
                new.append(nxt)
                text = self.tok.decode(new)
                if any(s in text for s in until):
                    break
            text = self.tok.decode(new)
            for s in until:
                text = text.split(s)[0]
            out.append(text)
        return out


def evaluate(model, tokenizer, tasks: list[str], device: str = "cpu", limit: int | None = None,
             include_path: str | None = None, num_fewshot: int | None = None) -> dict:
    """``lm_eval.simple_evaluate`` on ``ReprolabLM(model, tokenizer)``; ``include_path``: a folder of extra task YAMLs."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    return simple_evaluate(model=ReprolabLM(model, tokenizer, device), tasks=tasks, limit=limit, num_fewshot=num_fewshot,
                           task_manager=TaskManager(include_path=include_path) if include_path else None)
