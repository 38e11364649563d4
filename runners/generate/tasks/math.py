"""MATH (Hendrycks et al. 2021) by greedy generation: the answer is the last ``\\boxed{...}`` of the generation (or,
for models trained on MetaMathQA, what follows the last "The answer is"), compared with the gold answer after the
normalisation of the MATH repository's ``math_equivalence.is_equiv`` (``strip_string``; MetaMath's ``eval_math.py``
and lm-eval's ``hendrycks_math`` use the same), exact match of the normalised strings.

Normalisation (``normalize``): line breaks, ``\\!``, ``\\left`` / ``\\right``, degrees (``^\\circ``), ``\\%``, escaped
dollars (``\\$``), units after ``\\text{ `` (with its space, as in the dataset), spaces; ``\\tfrac`` / ``\\dfrac`` ->
``\\frac``, ``\\frac12`` -> ``\\frac{1}{2}``, ``\\sqrt3`` -> ``\\sqrt{3}``, ``a/b`` -> ``\\frac{a}{b}`` for integers,
``0.5`` -> ``\\frac{1}{2}``, a leading ``.5`` -> ``0.5``, a short ``x = `` before the value dropped. Beyond
``strip_string``: bare ``$`` signs are removed (the answer of a "The answer is: $x$" line; Minerva's
``normalize_final_answer`` removes them too), so are bare ``%`` signs, and a failing ``strip_string`` step
leaves the string as it was instead of falling back to comparing the raw strings.

The prompt is the one of DFT's math evaluation (../shared/papers/dft.md §4.3, prompt type ``metamath``): the
Alpaca template, zero-shot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from runners.generate.tasks.base import Example, Task

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
          "\n\n### Instruction:\n{problem}\n\n### Response:\n")
STOPS = ("\n### Instruction", "\n\n\n")  # the model starting another Alpaca turn, or trailing blank lines
SOURCES = ("local", "hf")


# ---- answer extraction ---------------------------------------------------------------------------
def last_boxed(text: str) -> Optional[str]:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed x`` up to the next ``$``) of
    ``text``, with nested braces; None when there is none or its braces do not close."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:]
    if rest.startswith("\\boxed "):  # "\boxed 5$": up to the closing dollar (lm-eval's hendrycks_math utils)
        return rest[len("\\boxed "):].split("$")[0].strip() or None
    open_at = rest.find("{")
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(rest)):
        depth += {"{": 1, "}": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[open_at + 1 : i]
    return None


def extract_answer(generation: str) -> Optional[str]:
    """The model's final answer: the last boxed expression, else what follows the last "answer is" (MetaMath's
    "The answer is: 42"), up to the end of that line, without a trailing period; None when neither is there."""
    boxed = last_boxed(generation)
    if boxed is not None:
        return boxed
    low = generation.lower()
    at = low.rfind("answer is")
    if at < 0:
        return None
    answer = generation[at + len("answer is"):].lstrip(" :").split("\n")[0].strip()
    return answer[:-1].strip() if answer.endswith(".") else answer


def gold_answer(row: dict) -> str:
    """The gold answer of a MATH row: its ``answer`` field (MATH-500) or the last boxed expression of its solution."""
    if row.get("answer") is not None:
        return str(row["answer"])
    boxed = last_boxed(row["solution"])
    if boxed is None:
        raise ValueError(f"a MATH row has no answer field and no \\boxed{{}} in its solution: {row['solution'][:200]!r}")
    return boxed


# ---- normalisation (Hendrycks' math_equivalence.strip_string) -----------------------------------
def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, post = part[0], part[1], part[2:]
        out += "{" + a + "}" + ("{" + b + "}" + post if b != "{" else b + post)
    return out


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


def _remove_right_units(s: str) -> str:
    return s.split("\\text{ ")[0] if "\\text{ " in s else s


def _fix_sqrt(s: str) -> str:
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        out += "\\sqrt" + (part if part.startswith("{") or not part else "{" + part[0] + "}" + part[1:])
    return out


def normalize(s: str) -> str:
    """A MATH answer in the canonical form ``is_equiv`` compares (see the module docstring)."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _remove_right_units(s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    if len(s.split("=")) == 2 and len(s.split("=")[0]) <= 2:  # "k = 5" -> "5"
        s = s.split("=")[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def is_equiv(prediction: Optional[str], gold: Optional[str]) -> bool:
    """Exact match of the normalised answers (None, no answer found, matches nothing)."""
    if prediction is None or gold is None:
        return False
    return normalize(prediction) == normalize(gold)


def cut(generation: str) -> str:
    """The generation up to the first stop string (the model starting another turn)."""
    for stop in STOPS:
        generation = generation.split(stop)[0]
    return generation


@schema("task", "math")
@dataclass
class MATH(Task):
    """MATH test problems, zero-shot with the Alpaca prompt of DFT's math evaluation (../shared/papers/dft.md §4.3:
    greedy, 512 new tokens), scored by `is_equiv` on the extracted answer (`runners.generate.tasks.math`).

    source: ``local`` (``test_file`` under ``data_dir``: JSON lines with ``problem`` and ``solution`` (its last
      ``\\boxed{}`` is the answer) or ``answer``) or ``hf`` (``hf_path`` / ``hf_name``, split ``split``; the MATH
      test set has 5000 problems, ``HuggingFaceH4/MATH-500`` its 500-problem subset).
    """

    source: str = "hf"
    data_dir: str = "${paths.data_dir}"
    test_file: str = "math/test.jsonl"
    hf_path: str = "hendrycks/competition_math"
    hf_name: Optional[str] = None
    split: str = "test"
    max_new_tokens: int = 512

    def __post_init__(self):
        checks.one_of("runner.task.source", self.source, SOURCES)
        checks.positive("runner.task.max_new_tokens", self.max_new_tokens)

    def examples(self, tokenizer) -> list[Example]:
        from runners.generate.tasks import cot

        rows = self._take(cot.load_rows(self.source, self.data_dir, self.test_file, self.hf_path, self.hf_name, self.split))
        return [Example(tokenizer.encode(ALPACA.format(problem=r["problem"])), target=gold_answer(r),
                        meta={"type": r.get("type", "")}) for r in rows]

    def is_done(self, tokenizer, generated):
        from runners.generate.tasks import cot

        eos = getattr(tokenizer, "eos_id", None)
        if eos is not None and generated and generated[-1] == eos:
            return True
        return any(stop in cot.tail_text(tokenizer, generated) for stop in STOPS)

    def score(self, tokenizer, example, generated):
        eos = getattr(tokenizer, "eos_id", None)
        ids = generated[: generated.index(eos)] if eos is not None and eos in generated else generated
        return {"correct": float(is_equiv(extract_answer(cut(tokenizer.decode(ids))), example.target))}
