"""What a W&B run logged, read back from its offline ``run-<id>.wandb`` file (no network, no W&B server).

The file is W&B's record log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0) and then LevelDB's log
format (32 KiB blocks of chunks, each headed by a CRC-32C, a length and a type: FULL, FIRST, MIDDLE,
LAST) holding one `wandb_internal_pb2.Record` per record. The dashboard tests read the history, summary
and config keys of a tiny run from it, so that every panel is checked against what W&B actually got.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    """Every `Record` in the file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise ValueError(f"{path}: not a W&B run file (it does not start with the :W&B header)")
    pos, chunks = len(HEADER), []
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += room
            continue
        chunks.append(data[pos + 7: pos + 7 + length])
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


@dataclass
class Logged:
    """The keys one run logged: history (per step), summary (final values) and config (flattened, dotted)."""

    history: set[str] = field(default_factory=set)
    summary: set[str] = field(default_factory=set)
    config: set[str] = field(default_factory=set)
    group: str | None = None
    job_type: str | None = None

    def __or__(self, other: "Logged") -> "Logged":
        return Logged(self.history | other.history, self.summary | other.summary, self.config | other.config)


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _flatten(prefix: str, value, out: set[str]) -> None:
    out.add(prefix)
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)


def run_file(path: Path) -> Path:
    """The ``run-<id>.wandb`` file of an offline run folder (or ``path`` itself)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {path}")
        path = files[0]
    return path


def wait_finished(path: Path, timeout_s: float = 60.0) -> Path:
    """The run's file once it holds the run's exit record: W&B's service process writes the file
    asynchronously, and may still be writing just after `wandb.finish` returns."""
    import time

    path = run_file(path)
    deadline = time.monotonic() + timeout_s
    while not any(r.WhichOneof("record_type") == "exit" for r in records(path)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {timeout_s:g} s (the run did not finish)")
        time.sleep(0.2)
    return path


def logged(path: Path) -> Logged:
    """The keys logged by the run in ``path`` (a ``run-<id>.wandb`` file or the offline run folder holding one)."""
    out = Logged()
    for r in records(run_file(path)):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            out.history |= {_key(i) for i in r.history.item if not _key(i).startswith("_")}
        elif kind == "summary":
            out.summary |= {_key(i) for i in r.summary.update if not _key(i).startswith("_")}
        elif kind == "config":
            for i in r.config.update:
                if not _key(i).startswith("_"):
                    _flatten(_key(i), json.loads(i.value_json), out.config)
        elif kind == "run":
            out.group, out.job_type = r.run.run_group or None, r.run.job_type or None
            for i in r.run.config.update:
                if not _key(i).startswith("_"):
                    _flatten(_key(i), json.loads(i.value_json), out.config)
    # W&B's summary holds each history key's last value as well; a logged table or image is stored as the
    # fields of its key (`plot/T/_type`, `plot/T/path`, ...): the panels name the key itself
    out.summary |= out.history
    for keys in (out.history, out.summary):
        keys |= {k.removesuffix("/_type") for k in keys if k.endswith("/_type")}
    return out
