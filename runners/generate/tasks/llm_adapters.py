"""LLM-Adapters' test sets (commonsense: BoolQ ... OBQA; arithmetic: GSM8K, AQuA, SVAMP, MAWPS, ...), scored the way
the official evaluation scripts do (github AGI-Edgerunners/LLM-Adapters ``commonsense_evaluate.py`` and
``evaluate.py``; RoseLoRA fine-tuning tables, ../shared/papers/roselora.md §4.2-§4.3).

Each test file is LLM-Adapters' ``dataset/<name>/test.json``: a JSON list (or jsonl) of records with
``instruction`` (the whole question, options included) and ``answer`` (commonsense: the option word, e.g.
``true``, ``solution2``, ``answer3``, ``ending4``, ``option1``; arithmetic: a number, AQuA a letter). The prompt is
the official evaluation template around the instruction; the response is the generation up to EOS; the answer is
- commonsense: the first occurrence of one of the dataset's option words (``extract_answer``), compared as a string;
- arithmetic: the last number of the response, commas removed, within 0.001 of the label (``extract_answer_number``);
- AQuA: the first of the letters A-E anywhere in the response (``extract_answer_letter``; note that it also
  matches the capital in a word such as "As": the official rule, kept).
Deviation: the official scripts decode with 4-beam search (temperature 0.1, no sampling); the generate runner
decodes greedily (one beam).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

# The option words of each commonsense test set (official extract_answer), by LLM-Adapters' folder name.
COMMONSENSE = {
    "boolq": ("true", "false"),
    "piqa": ("solution1", "solution2"),
    "social_i_qa": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "hellaswag": ("ending1", "ending2", "ending3", "ending4"),
    "winogrande": ("option1", "option2"),
    "ARC-Challenge": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "ARC-Easy": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "openbookqa": ("answer1", "answer2", "answer3", "answer4", "answer5"),
}
NUMERIC = ("gsm8k", "SVAMP", "mawps", "AddSub", "MultiArith", "SingleEq")
LETTER = ("AQuA",)
DATASETS = tuple(COMMONSENSE) + NUMERIC + LETTER
_NUMBER = re.compile(r"-?\d+\.?\d*")
_LETTER = re.compile(r"A|B|C|D|E")


def prompt(instruction: str, input: str | None = None) -> str:
    """The official evaluation template (its source's 16-space indentation kept, as it is what was scored)."""
    pad = " " * 16
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                f"{pad}### Instruction:\n{pad}{instruction}\n\n{pad}### Input:\n{pad}{input}\n\n{pad}### Response:\n{pad}")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n"
            f"{pad}### Instruction:\n{pad}{instruction}\n\n{pad}### Response:\n{pad}")


def extract(dataset: str, response: str):
    """The predicted answer of ``response`` for ``dataset``: an option word ('' if none), a float (inf if no
    number) or a letter ('' if none)."""
    text = response.strip()
    if dataset in COMMONSENSE:
        found = re.findall("|".join(COMMONSENSE[dataset]), text)
        return found[0] if found else ""
    if dataset in LETTER:
        found = _LETTER.findall(text)
        return found[0] if found else ""
    found = _NUMBER.findall(text.replace(",", ""))
    return float(found[-1]) if found else float("inf")


def correct(dataset: str, response: str, label) -> bool:
    pred = extract(dataset, response)
    if dataset in NUMERIC:
        return abs(float(label) - pred) <= 1e-3
    return pred == str(label)


def read_records(path: Path) -> list[dict]:
    """A JSON list (LLM-Adapters' test.json) or one JSON object per line."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]
