"""One interface for the contrastive objectives of a dual encoder (CLIP, SogCLR, iSogCLR, TempNet's
robust contrastive loss; ../shared/papers/tempnet.md §2.2, §3): batches of kind ``contrastive``
(`reprolab.data.contrastive`), the model maps a batch to normalised (image, text) embeddings.

A subclass writes ``pair_loss(model, image, text, batch) -> {"loss": ..., ...}``. Validation is
retrieval of the held-out pairs among themselves (one batch): ``ir1``/``ir5`` (text -> image, "image
retrieval"), ``tr1``/``tr5`` (image -> text), ``r1`` their mean at 1, and ``loss`` = 1 - r1.
`GlobalEstimator` is SogCLR's moving-average estimate of each anchor's sum over all negatives
of the dataset (one scalar and one running max per sample and direction), shared by SogCLR and iSogCLR.

Cross-process negatives (spec §2.2, "global batch B after all-gather"): under a process group of W > 1 the
training loss first all-gathers the embeddings and the sample ids of every process (`gather_pairs`), so each
process computes the loss of the whole global batch (every pair a negative of every other), as the official
code does; the estimators and tables see the same global ids everywhere and stay equal. The gather's backward
sums the W processes' gradients of the local shard (`AllGather`), so after the data-parallel mean of the
gradients a step equals the one-process step on the concatenated batch (tests/tempnet/test_all_gather.py).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from reprolab import checks
from reprolab.roles import ObjectiveMethod

EPS = 1e-14  # the official clamp of the moving average


def check_pairs(image: torch.Tensor) -> None:
    """A contrastive batch needs >= 2 pairs: each pair's negatives are the others."""
    if image.shape[0] < 2:
        raise checks.ConfigError(f"a contrastive batch of {image.shape[0]} pair has no negatives: every pair is "
                                 "contrasted with the other pairs of its batch. Use data.batch_size >= 2.")


class AllGather(torch.autograd.Function):
    """The W processes' ``x`` (same shape everywhere), concatenated in rank order; backward: the sum over
    processes of the gradient of this process's rows (each process's loss reads every shard)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def distributed_world() -> int:
    """The process group's size (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_pairs(image: torch.Tensor, text: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The global batch: every process's embeddings (gradients reach the local shard) and, when the batch has
    them, sample ids, in rank order. Every process must hold as many pairs (the data loader's drop_last)."""
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.long, device=image.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([image.shape[0]], device=image.device))
    if len({int(n) for n in sizes}) > 1:
        raise checks.ConfigError(f"contrastive batches of {[int(n) for n in sizes]} pairs on the {len(sizes)} processes: "
                                 "the all-gather of negatives needs the same number everywhere (drop the last, short batch).")
    if "index" in batch:
        batch = {**batch, "index": AllGather.apply(batch["index"].to(image.device))}
    return AllGather.apply(image), AllGather.apply(text), batch


def similarity_diffs(image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image_diffs, text_diffs)``, both with the anchor on the rows: ``image_diffs[i, j] = s_ij - s_ii``
    (image i against text j), ``text_diffs[j, i] = s_ij - s_jj`` (text j against image i); s = image @ text^T."""
    sim = image @ text.t()
    diag = sim.diagonal()
    return sim - diag[:, None], sim.t() - diag[:, None]


def recall_at(scores: torch.Tensor, k: int) -> float:
    """Share of rows whose own column (the diagonal) is among the k largest scores of the row."""
    own = scores.diagonal()[:, None]
    return float(((scores > own).sum(1) < k).float().mean())


def caption_retrieval(image: torch.Tensor, text: torch.Tensor, image_of_text: torch.Tensor, k: int = 1) -> dict:
    """Zero-shot retrieval R@k with several captions per image (Flickr30K / MSCOCO Karpathy test splits: 5 each;
    spec §4 Table 2), from normalised embeddings ``image (N, D)``, ``text (M, D)`` and ``image_of_text (M,)`` (each
    caption's image): ``ir`` = share of captions whose image is among the k most similar images, ``tr`` = share of
    images with one of their captions among the k most similar captions; in %."""
    sim = image @ text.t()  # (N, M)
    top_images = sim.t().topk(min(k, sim.shape[0]), dim=1).indices  # (M, k)
    ir = (top_images == image_of_text[:, None]).any(1).float().mean()
    top_texts = sim.topk(min(k, sim.shape[1]), dim=1).indices  # (N, k)
    tr = (image_of_text[top_texts] == torch.arange(sim.shape[0], device=sim.device)[:, None]).any(1).float().mean()
    return {"ir": 100 * float(ir), "tr": 100 * float(tr)}


def zero_shot_accuracy(image: torch.Tensor, labels: torch.Tensor, class_text: torch.Tensor) -> float:
    """Zero-shot top-1 in % (spec §4 Table 2: CIFAR10/100, ImageNet1K, class-name prompt templates), CLIP's
    recipe: each class's embedding is the normalised mean of its templates' normalised text embeddings
    ``class_text (C, T, D)``; an image gets the class of the most similar one."""
    classes = torch.nn.functional.normalize(torch.nn.functional.normalize(class_text, dim=-1).mean(1), dim=-1)
    return 100 * float(((image @ classes.t()).argmax(1) == labels).float().mean())


class GlobalEstimator:
    """Per sample (dataset ``index``) and direction: ``s`` (the moving average of the sum over negatives
    of exp(d - b)) and ``b`` (the running max of d, for stability); grown on demand, kept in checkpoints."""

    def __init__(self):
        self.s = torch.zeros(0, dtype=torch.float64)
        self.b = torch.zeros(0, dtype=torch.float64)

    def grow(self, n: int) -> None:
        if n > self.s.numel():
            extra = max(n, 2 * self.s.numel()) - self.s.numel()
            self.s = torch.cat([self.s, torch.zeros(extra, dtype=self.s.dtype)])
            self.b = torch.cat([self.b, torch.zeros(extra, dtype=self.b.dtype)])

    def weights(self, d: torch.Tensor, ids: torch.Tensor, gamma: float, first_epoch: bool,
                norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for anchors ``ids`` with detached scaled diffs ``d`` ``(B, B)`` (anchor rows, the
        diagonal excluded): b <- max(b, max_j d_ij); g = sum_{j != i} exp(d_ij - b) / norm; s <- g (first
        epoch) or (1 - gamma) s exp(b_old - b) + gamma g. Returns (weights exp(d - b) / s, s, b), s >= 1e-14."""
        ids_cpu = ids.cpu()
        self.grow(int(ids_cpu.max()) + 1)
        neg = ~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
        old_b = self.b[ids_cpu].to(d)
        new_b = torch.maximum(old_b, d.max(1).values)
        e = torch.exp(d - new_b[:, None]) * neg
        g = e.sum(1) / norm
        s = g if first_epoch else (1 - gamma) * self.s[ids_cpu].to(d) * torch.exp(old_b - new_b) + gamma * g
        self.b[ids_cpu] = new_b.detach().cpu().to(self.b.dtype)
        self.s[ids_cpu] = s.detach().cpu().to(self.s.dtype)
        s = s.clamp_min(EPS)
        return e / s[:, None], s, new_b

    def state_dict(self) -> dict:
        return {"s": self.s.clone(), "b": self.b.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.s, self.b = state["s"].clone(), state["b"].clone()


class ContrastiveObjective(ObjectiveMethod):
    """Base of the dual-encoder objectives: the batches, the one-pair check, the retrieval metrics."""

    data_kind: ClassVar[str] = "contrastive"

    @abstractmethod
    def pair_loss(self, model, image: torch.Tensor, text: torch.Tensor, batch: dict) -> dict:
        """``{"loss": scalar, ...}`` from the batch's normalised embeddings."""

    def loss(self, model, batch, reference=None):
        image, text = model(batch)
        if distributed_world() > 1:
            image, text, batch = gather_pairs(image, text, batch)
        check_pairs(image)
        return self.pair_loss(model, image.float(), text.float(), batch)

    def evaluate(self, model, batch, reference=None):
        image, text = model(batch)
        check_pairs(image)
        sim = image.float() @ text.float().t()
        n = torch.tensor(float(sim.shape[0]))
        out = {"tr1": recall_at(sim, 1), "tr5": recall_at(sim, 5), "ir1": recall_at(sim.t(), 1),
               "ir5": recall_at(sim.t(), 5)}
        out["r1"] = (out["tr1"] + out["ir1"]) / 2
        out["loss"] = 1 - out["r1"]
        sums = {k: (torch.tensor(v) * n, n) for k, v in out.items()}
        if hasattr(model, "temperature"):  # TempNet: the mean predicted tau of each modality
            tau_i, tau_t = model.temperature(image, text)
            sums.update(tau_image=(tau_i.float().sum(), n), tau_text=(tau_t.float().sum(), n))
        return sums
