"""Generations kept on disk and reused by every run that asks for the same ones.

A file ``generations-<key>.json`` per request; the key is a SHA-256 of the caller's model
fingerprint, the prompts, the `Sampling` settings and the eos id (not the batch size: samples do
not depend on it). The file holds those settings beside the tokens and a checksum of the tokens;
it is written atomically, and one that does not parse, belongs to another key or fails its
checksum is refused with an error naming it (never read as valid).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from reprolab.checks import UserError
from reprolab.rundir import atomic_write
from runners.generate.sampling import Generations, Sampling, settings

FORMAT = 1


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_fingerprint(path) -> str:
    """A fingerprint of a weights file: its absolute path, size and modification time."""
    p = Path(path).resolve()
    st = os.stat(p)
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"


class GenerationCache:
    """``GenerationCache(folder)``: pass it to `runners.generate.sampling.generate` with a fingerprint."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def key(self, fingerprint: str, prompts: list[list[int]], sampling: Sampling, eos_id: Optional[int]) -> str:
        return _sha({"format": FORMAT, "fingerprint": fingerprint, "prompts": _sha(prompts), **settings(sampling, eos_id)})

    def path(self, key: str) -> Path:
        return self.folder / f"generations-{key}.json"

    def load(self, key: str) -> Optional[Generations]:
        """The stored generations for ``key``; None when there are none; UserError when the file is bad."""
        path = self.path(key)
        if not path.exists():
            return None
        fix = "delete it and they are generated again"
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"generations cache {path} is truncated or corrupt ({e}): {fix}.") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            raise UserError(f"generations cache {path} is not a format-{FORMAT} file for key {key[:12]}...: {fix}.")
        tokens = data.get("tokens")
        if _sha(tokens) != data.get("tokens_sha256"):
            raise UserError(f"generations cache {path}: its tokens do not match their checksum (corrupt file): {fix}.")
        n = data["sampling"]["num_samples"]
        if len(tokens) != data.get("num_prompts") or any(len(per_prompt) != n for per_prompt in tokens):
            raise UserError(f"generations cache {path} does not hold {n} samples for each of its "
                            f"{data.get('num_prompts')} prompts: {fix}.")
        return Generations(tokens, data["new_tokens"], data["seconds"], cached=True)

    def save(self, key: str, gens: Generations, *, fingerprint: str, prompts: list[list[int]], sampling: Sampling,
             eos_id: Optional[int]) -> Path:
        data = {"format": FORMAT, "key": key, "fingerprint": fingerprint, "num_prompts": len(prompts),
                "prompts_sha256": _sha(prompts), **settings(sampling, eos_id), "new_tokens": gens.new_tokens,
                "seconds": gens.seconds, "tokens_sha256": _sha(gens.tokens), "tokens": gens.tokens}
        path = self.path(key)
        atomic_write(path, json.dumps(data, separators=(",", ":")) + "\n")
        return path
