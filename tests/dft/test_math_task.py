"""The MATH generate task (`runners.generate.tasks.math`): boxed-answer extraction with nested braces, MATH's
answer normalisation on hand-checkable cases, and the task on a local JSON-lines fixture (tests/dft/data)."""
from __future__ import annotations

from pathlib import Path

import pytest

from runners.generate.tasks.math import (
    MATH,
    extract_answer,
    is_equiv,
    last_boxed,
    normalize,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("text, boxed", [
    ("so $x = \\boxed{5}$.", "5"),
    ("first \\boxed{1}, then \\boxed{2}", "2"),  # the last one
    ("$\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("\\boxed{\\{1, 2\\} \\cup \\{3\\}}", "\\{1, 2\\} \\cup \\{3\\}"),  # escaped braces balance too
    ("the answer is $\\fbox{7}$", "7"),
    ("$\\boxed 9$", "9"),
    ("\\boxed{12", None),  # never closed
    ("no box here", None),
])
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


@pytest.mark.parametrize("generation, answer", [
    ("2 + 2 = 4.\nThe answer is: 4", "4"),  # MetaMath's ending
    ("Thus the answer is $\\frac{1}{2}$.", "$\\frac{1}{2}$"),
    ("The answer is 3.\nThe answer is: 8\n", "8"),  # the last one, to the end of its line
    ("we get \\boxed{10}. The answer is: 11", "10"),  # a box wins
    ("I do not know", None),
])
def test_extract_answer(generation, answer):
    assert extract_answer(generation) == answer


@pytest.mark.parametrize("raw, canonical", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\tfrac{3}{4}", "\\frac{3}{4}"),
    ("\\frac12", "\\frac{1}{2}"),
    ("\\frac1{72}", "\\frac{1}{72}"),
    ("3/4", "\\frac{3}{4}"),
    ("0.5", "\\frac{1}{2}"),
    (".5", "\\frac{1}{2}"),  # 0.5, then one half
    (".25", "0.25"),
    ("10\\text{ inches}", "10"),  # units after "\text{ "
    ("\\$18", "18"),  # escaped dollar (money)
    ("$\\frac{\\sqrt{3}}{2}$", "\\frac{\\sqrt{3}}{2}"),  # math-mode dollars
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("50\\%", "50"),
    ("x = 5", "5"),
    ("k=\\frac{1}{3}", "\\frac{1}{3}"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("2\\sqrt2", "2\\sqrt{2}"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("1,\\!000", "1,000"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}"),
])
def test_normalize(raw, canonical):
    assert normalize(raw) == canonical


def test_is_equiv():
    assert is_equiv("\\dfrac{3}{4}", "\\frac34")
    assert is_equiv("$0.5$", "\\frac{1}{2}")
    assert is_equiv("5", "5\\text{ inches}")
    assert not is_equiv("\\frac{1}{3}", "\\frac{1}{2}")
    assert not is_equiv("5", "50")
    assert not is_equiv(None, "5")  # no answer found never matches


class _Chars:
    """A character tokenizer with an EOS id (``encode`` / ``decode``, as the generate runner's tokenizers)."""

    eos_id = 0

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i)


def test_task_on_the_local_fixture():
    task = MATH(source="local", data_dir=str(DATA), test_file="math_tiny.jsonl")
    tok = _Chars()
    examples = task.examples(tok)
    assert [e.target for e in examples] == ["\\dfrac{3}{4}", "5", "5\\text{ inches}"]  # the solutions' last boxes
    assert tok.decode(examples[1].prompt).endswith("### Instruction:\nFind $x$ if $2x = 10$.\n\n### Response:\n")

    def score(i, text):
        return task.score(tok, examples[i], tok.encode(text))["correct"]

    assert score(0, "We add: $\\frac34$. The answer is: \\frac{3}{4}") == 1.0
    assert score(0, "The answer is: 0.75") == 0.0  # exact match of normalised strings, not numeric equality
    assert score(1, "x is \\boxed{5}") == 1.0
    assert score(1, "The answer is: 5\n### Instruction:\nThe answer is: 6") == 1.0  # cut at the next turn
    assert score(1, "The answer is: 5") == 1.0 and score(1, "The answer is: 6") == 0.0
    assert score(2, "The diagonal is $\\boxed{5}$ inches.") == 1.0
    assert score(1, "The answer is: 5" + chr(0) + "The answer is: 6") == 1.0  # nothing after EOS counts
    assert task.is_done(tok, tok.encode("The answer is: 5\n### Instruction")) and task.is_done(tok, [65, 0])
    assert not task.is_done(tok, tok.encode("The answer is: 5"))
    assert len(MATH(source="local", data_dir=str(DATA), test_file="math_tiny.jsonl", max_examples=2).examples(tok)) == 2


def test_a_row_without_an_answer_is_an_error():
    from runners.generate.tasks.math import gold_answer

    assert gold_answer({"problem": "p", "solution": "s", "answer": "7"}) == "7"  # MATH-500's field
    with pytest.raises(ValueError, match="no answer field"):
        gold_answer({"problem": "p", "solution": "it is 7"})


def test_metamath_eval_scores_math_and_fills_the_table(run_job, tmp_path):
    """experiment=dft_metamath_eval on the fixture (a random tiny model: it answers nothing right) fills the MATH
    cell of its label's row in experiments/dft/math.yaml."""
    from experiments.report import build
    from experiments.tables import load_runs, paper_tables

    logs = tmp_path / "logs"
    results, _ = run_job(["experiment=dft_metamath_eval", "runner.label=dft2", "model=llama_tiny", "model.pretrained=false",
                          "runner.task.source=local", f"runner.task.data_dir={DATA}", "runner.task.test_file=math_tiny.jsonl",
                          "runner.task.max_new_tokens=4", "runner.tokenizer=byte", "runner.checkpoint=null", "logger=csv",
                          "runner.device=cpu", "runner.dtype=float32"], log_dir=logs)
    assert results["table/accuracy"] == 0.0
    cells = build(next(t for t in paper_tables("dft") if t.name == "math"), load_runs(logs))
    assert cells["MetaMath-Mistral-7B-DFT2", "MATH"].n == 1 and cells["MetaMath-Mistral-7B-DFT2", "MATH"].mean == 0.0
    assert cells["MetaMath-Mistral-7B-DFT2", "GSM8K"].n == 0 and cells["MetaMath-Mistral-7B-DFT", "MATH"].n == 0
