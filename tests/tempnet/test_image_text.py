"""CC3M-style image-caption pairs (data=image_text / cc3m) through the paper-scale dual encoder, offline on local
webdataset shards: the batches, stable per-pair indices across epochs, and a TempNet-iSogCLR step."""
from __future__ import annotations

import io
import tarfile

import torch

from reprolab.data.config import ImageTextData


def _shards(folder, n: int) -> str:
    from PIL import Image

    path = folder / "pairs.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            for name, data in ((f"{i:03d}.jpg", _jpeg(Image.new("RGB", (40 + i, 30), (10 * i, 50, 200 - 10 * i)))),
                               (f"{i:03d}.txt", f"a picture number {i}".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def test_image_text_batches_and_a_tempnet_step(tmp_path):
    shard = _shards(tmp_path, 6)
    cfg = ImageTextData(hf_path="webdataset", data_files={"train": [shard], "validation": [shard]}, tokenizer="byte",
                        image_size=32, max_len=8, batch_size=3, val_pairs=4, shuffle_buffer=4)
    source = cfg.build(0)
    stream = source.train_batches(0, 0, 1)
    batches = [next(stream) for _ in range(4)]  # two epochs of two batches
    b = batches[0]
    assert b["pixel_values"].shape == (3, 3, 32, 32) and b["input_ids"].shape == (3, 8)
    assert [int(x["epoch"]) for x in batches] == [0, 0, 1, 1]
    assert sorted(torch.cat([x["index"] for x in batches[:2]]).tolist()) == list(range(6))  # each pair once an epoch
    assert sorted(torch.cat([x["index"] for x in batches[2:]]).tolist()) == list(range(6))
    assert source.val_batches()[0]["pixel_values"].shape[0] == 4

    from methods.isogclr import ISogCLRConfig
    from methods.tempnet_clip import TempNetClipConfig
    from reprolab.models.assemble import attach_temperature
    from reprolab.models.config import ClipRN50DistilBert

    torch.manual_seed(0)
    model = ClipRN50DistilBert(pretrained=False, embed_dim=8, image_width=64, image_depths=[1, 1, 1, 1], text_width=16,
                               text_layers=1, text_heads=2, text_vocab=256).build()
    attach_temperature(model, TempNetClipConfig(prototypes=4))
    out = ISogCLRConfig().loss(model, b)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.temperature.image.linear_1.weight.grad is not None
    assert 0.005 <= float(out["tau_image"]) <= 0.05
