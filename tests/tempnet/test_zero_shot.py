"""experiments.tempnet.zero_shot (TempNet's Table 2 evaluations) offline on a tiny random ResNet + DistilBERT dual
encoder: the embeddings equal the dual encoder's own forward on a training-style batch, the retrieval and
classification numbers equal the metrics on those embeddings, and the table/* keys are table2.yaml's."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from experiments.tempnet.zero_shot import TASKS, TEMPLATES, Embedder, evaluate
from methods.contrastive import caption_retrieval, zero_shot_accuracy
from reprolab.data.config import ImageTextData
from reprolab.models.config import ClipRN50DistilBert


@pytest.fixture(scope="module")
def embed():
    torch.manual_seed(0)
    model = ClipRN50DistilBert(pretrained=False, embed_dim=8, image_width=64, image_depths=[1, 1, 1, 1], text_width=16,
                               text_layers=1, text_heads=2, text_vocab=256).build()
    source = ImageTextData(hf_path="webdataset", tokenizer="byte", image_size=32, max_len=12, batch_size=3).build(0)
    return Embedder(model, source, batch=2)  # batches of 2: the concatenation is exercised


def _images(n):
    return [Image.new("RGB", (36 + 3 * i, 32), (25 * i, 200 - 20 * i, 90)) for i in range(n)]


def test_embeddings_equal_the_dual_encoders_forward(embed):
    images, texts = _images(3), ["a red dog", "two cats", "a boat on a lake"]
    from reprolab.data.contrastive import image_tensor

    ids, mask = embed.source._text(texts)
    batch = {"pixel_values": torch.stack([image_tensor(i, 32) for i in images]), "input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        ref_i, ref_t = embed.model(batch)
    torch.testing.assert_close(embed.images(images), ref_i, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(embed.texts(texts), ref_t, rtol=1e-5, atol=1e-6)


def test_retrieval_and_classification_tasks(embed):
    images = _images(4)
    captions = [["a red dog", "a dog"], "two cats", ["a boat", "a lake", "a boat on a lake"], ["snow"]]
    rows = [{"image": im, "caption": c} for im, c in zip(images, captions)]
    out = evaluate(embed, TASKS["flickr"], rows)
    flat = [c for cs in ([c] if isinstance(c, str) else c for c in captions) for c in cs]
    ref = caption_retrieval(embed.images(images), embed.texts(flat), torch.tensor([0, 0, 1, 2, 2, 2, 3]), k=1)
    assert out == pytest.approx({"table/flickr_ir1": ref["ir"], "table/flickr_tr1": ref["tr"]})

    names = ["tench, Tinca tinca", "goldfish", "great_white_shark"]
    rows = [{"image": im, "label": lab} for im, lab in zip(images, [0, 2, 1, 0])]
    out = evaluate(embed, TASKS["imagenet"], rows, names)
    prompts = [t.format(n) for n in ("tench", "goldfish", "great white shark") for t in TEMPLATES]
    ref = zero_shot_accuracy(embed.images(images), torch.tensor([0, 2, 1, 0]),
                             embed.texts(prompts).view(3, len(TEMPLATES), -1))
    assert out == pytest.approx({"table/imagenet": ref})


def test_task_columns_are_table2s():
    from pathlib import Path

    import yaml

    table = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments/tempnet/table2.yaml").read_text())
    metrics = {c["metric"] for c in table["columns"].values()}
    ours = {f"table/{t.column}_{m}" for t in TASKS.values() if t.kind == "retrieval" for m in ("ir1", "tr1")}
    ours |= {f"table/{t.column}" for t in TASKS.values() if t.kind == "classification"}
    assert ours == metrics
