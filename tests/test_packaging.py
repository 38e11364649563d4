"""What we ship must not shadow another installed package. A top-level import name of ours that another
distribution also provides wins from the repo root (sys.path[0]) and breaks whoever imports the other one:
transformers >= 5.25 depends on Hugging Face's ``kernels`` and imports it from ``transformers.activations``, so our
old top-level ``kernels/`` (now ``reprolab/kernels/``) broke every model import."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from reprolab.registry import ROOT

tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with tomllib (Python >= 3.11)")


def _our_top_level_names() -> list[str]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return sorted({pattern.split(".")[0].rstrip("*") for pattern in find["include"]})


def test_no_top_level_package_of_ours_is_also_another_distributions():
    names = _our_top_level_names()
    assert "reprolab" in names and "methods" in names
    provided = importlib.metadata.packages_distributions()
    clashes = {n: sorted(set(provided.get(n, [])) - {"reprolab"}) for n in names}
    assert not any(clashes.values()), f"top-level names shadowing installed distributions: {clashes}"
    for folder in ROOT.iterdir():  # a package folder at the root that pyproject does not list shadows as well
        if (folder / "__init__.py").exists() and folder.name not in {"tests", "benchmarks"}:
            assert folder.name in names, f"{folder.name}/ is a package at the repo root that pyproject does not ship"
        if folder.name in provided and folder.name not in names:
            assert not (folder / "__init__.py").exists(), f"{folder.name}/ shadows {provided[folder.name]}"


def test_transformers_model_code_imports_from_the_repo_root():
    """The failure this guards against, as a user meets it: run from the repo root, import a model."""
    code = "import transformers.integrations.hub_kernels, transformers.activations; from transformers import LlamaForCausalLM"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
