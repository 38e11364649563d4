"""TempNet's Table 2 zero-shot evaluations of a CLIP dual encoder trained on CC3M (../shared/papers/tempnet.md §4):
retrieval R@1 on the Flickr30K (1k) and MSCOCO (5k) Karpathy test splits and zero-shot top-1 on CIFAR10, CIFAR100
and ImageNet-1k val, from a finished ``experiment=tempnet_clip_cc3m`` run.

    python -m experiments.tempnet.zero_shot --run <run folder> [--tasks flickr mscoco cifar10 cifar100 imagenet]
        [--limit N] [--batch 64]

The run's model (config.yaml + checkpoints/last.ckpt) embeds the images at the run's data.image_size and the
captions / prompts with its data.tokenizer and max_len, as in training. The ``table/*`` numbers of
experiments/tempnet/table2.yaml (%) are merged into the run's results.json, so `python -m experiments.report tempnet`
fills Table 2 from the training runs. The datasets are the spec's HF ids (§4: nlphuji's Karpathy test sets,
uoft-cs/cifar10 / cifar100, ILSVRC/imagenet-1k); their column names here were not checked against the hub (no
network where this was written): `TASKS` names them in one place. Prompts: CLIP's ``a photo of a {}.`` family
(`TEMPLATES`, a subset of OpenAI's ImageNet templates; the official script's template file is not in the spec).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

TEMPLATES = ("a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.", "a photo of the small {}.",
             "a cropped photo of a {}.", "a blurry photo of a {}.", "a low resolution photo of a {}.", "itap of a {}.")


@dataclass(frozen=True)
class Task:
    kind: str  # "retrieval" (image, several captions) or "classification" (image, label)
    hf_path: str
    split: str
    image: str
    text: str  # the captions' column (retrieval) or the label's (classification)
    column: str  # the table/<column>[_ir1|_tr1] name in table2.yaml


TASKS = {
    "flickr": Task("retrieval", "nlphuji/flickr_1k_test_image_text_retrieval", "test", "image", "caption", "flickr"),
    "mscoco": Task("retrieval", "nlphuji/mscoco_2014_5k_test_image_text_retrieval", "test", "image", "caption", "coco"),
    "cifar10": Task("classification", "uoft-cs/cifar10", "test", "img", "label", "cifar10"),
    "cifar100": Task("classification", "uoft-cs/cifar100", "test", "img", "fine_label", "cifar100"),
    "imagenet": Task("classification", "ILSVRC/imagenet-1k", "validation", "image", "label", "imagenet"),
}


class Embedder:
    """The two towers of a trained dual encoder on raw inputs: PIL images -> normalised ``(N, D)``, strings ->
    normalised ``(N, D)``, in batches, preprocessed as the run's data source does (`ImageTextSource`)."""

    def __init__(self, model, source, batch: int = 64):
        self.model, self.source, self.batch = model.eval(), source, batch

    @torch.no_grad()
    def images(self, images: list) -> torch.Tensor:
        from reprolab.data.contrastive import image_tensor

        out = []
        for i in range(0, len(images), self.batch):
            x = torch.stack([image_tensor(img, self.source.cfg.image_size) for img in images[i:i + self.batch]])
            out.append(F.normalize(self.model.image_tower({"pixel_values": x}).float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch):
            ids, mask = self.source._text(texts[i:i + self.batch])
            out.append(F.normalize(self.model.text_tower({"input_ids": ids, "attention_mask": mask}).float(), dim=-1))
        return torch.cat(out)


def retrieval(embed: Embedder, images: list, captions: list[list[str]]) -> dict:
    """IR@1 / TR@1 (%) of images against their captions (several per image)."""
    from methods.contrastive import caption_retrieval

    flat = [c for cs in captions for c in cs]
    image_of_text = torch.tensor([i for i, cs in enumerate(captions) for _ in cs])
    return caption_retrieval(embed.images(images), embed.texts(flat), image_of_text, k=1)


def classification(embed: Embedder, images: list, labels: list[int], classnames: list[str],
                   templates: tuple[str, ...] = TEMPLATES) -> float:
    """Zero-shot top-1 (%): each class's prompts ``template.format(name)``, averaged per class."""
    from methods.contrastive import zero_shot_accuracy

    prompts = [t.format(name) for name in classnames for t in templates]
    class_text = embed.texts(prompts).view(len(classnames), len(templates), -1)
    return zero_shot_accuracy(embed.images(images), torch.tensor(labels), class_text)


def evaluate(embed: Embedder, task: Task, rows, classnames: list[str] | None = None) -> dict:
    """``table/*`` of one task from its rows (dicts with the task's columns)."""
    images = [r[task.image] for r in rows]
    if task.kind == "retrieval":
        caps = [[c] if isinstance(c, str) else list(c) for c in (r[task.text] for r in rows)]
        r = retrieval(embed, images, caps)
        return {f"table/{task.column}_ir1": r["ir"], f"table/{task.column}_tr1": r["tr"]}
    names = [n.split(",")[0].strip().replace("_", " ") for n in classnames]  # ImageNet's "tench, Tinca tinca"
    return {f"table/{task.column}": classification(embed, images, [int(r[task.text]) for r in rows], names)}


def main(argv=None) -> None:
    from omegaconf import OmegaConf

    from experiments.tables import load_runs
    from reprolab import hub
    from reprolab.models.assemble import attach_temperature
    from reprolab.registry import register_schemas
    from runners.generate.model import load_state

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished tempnet_clip_cc3m run folder")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--limit", type=int, default=None, help="the first N examples of each task (null: all)")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    folder = Path(args.run)
    run = next(r for r in load_runs(folder) if Path(r.path).resolve() == folder.resolve())
    schemas, cfg = register_schemas(), run.config
    source = schemas[("data", run.choices["data"])](**OmegaConf.to_container(cfg.data)).build(int(cfg.seed))
    model = schemas[("model", run.choices["model"])](**OmegaConf.to_container(cfg.model)).build()
    if run.choices.get("temperature"):
        attach_temperature(model, schemas[("temperature", run.choices["temperature"])](**OmegaConf.to_container(cfg.temperature)))
    model.load_state_dict(load_state(str(folder)))
    embed, table = Embedder(model, source, args.batch), {}
    for name in args.tasks:
        task = TASKS[name]
        ds = hub.load_dataset(task.hf_path, None, split=task.split, instead="download it into the HF cache first.")
        if args.limit is not None:
            ds = ds.select(range(min(args.limit, len(ds))))
        names = ds.features[task.text].names if task.kind == "classification" else None
        table.update(evaluate(embed, task, ds, names))
        print(name, {k: round(v, 2) for k, v in table.items() if k.startswith(f"table/{task.column}")}, flush=True)
    results = folder / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), **table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
