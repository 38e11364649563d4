"""Chain-of-thought QA tasks of the GEAR paper (GSM8K / AQuA 8-shot, BBH 3-shot), greedy, exact match.

Prompts and answer extraction follow the official evaluation scripts
(``GenerationBench/GenerationTest/evaluation_{gsm8k,aqua_cot,bbh_cot}.py``; ../shared/papers/gear.md §4.1):
the prompt is the k exemplars followed by ``"\\nQuestion: " + question + "\\n"``; the generation is
cut at the next ``"\\nQuestion:"`` before the answer is extracted. Deviation: the official runs read
fixed exemplar files (``lib_prompt/``); GSM8K and AQuA exemplars here are k problems of the train
split (fixed by ``shot_seed``), written in the same "Let's think step by step ... The answer is N." form.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

SPLIT = "\nQuestion:"
_NUMBER = re.compile(r"\d*\.?\d+")


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_rows(source: str, data_dir: str, file: str, hf_path: str, hf_name, split: str) -> list[dict]:
    """Rows of a split from a local jsonl (``source=local``) or an HF dataset (``source=hf``)."""
    if source == "local":
        from reprolab.data.text import resolve_data_file

        return read_jsonl(resolve_data_file(data_dir, file))
    from reprolab import hub

    rows = hub.load_dataset(hf_path, hf_name, split=split, instead="use the local files (runner.task.source=local).")
    return list(rows)


def tail_text(tokenizer, ids: list[int], n: int = 16) -> str:
    return tokenizer.decode(ids[-n:])


# ---- GSM8K -----------------------------------------------------------------------------------
def gsm8k_final(answer: str) -> str:
    """The gold number of a GSM8K answer (after ``####``)."""
    return answer.split("####")[-1].strip()


def gsm8k_exemplar(row: dict) -> str:
    reasoning = re.sub(r"<<[^>]*>>", "", row["answer"].split("####")[0]).strip()
    return f"Question: {row['question']}\nLet's think step by step\n{reasoning}\nThe answer is {gsm8k_final(row['answer'])}.\n"


def gsm8k_correct(generation: str, gold: str) -> tuple[bool, float | None]:
    """Official ``evaluate_pred_answer``: the last number of the cut generation equals the gold one."""
    pred = _NUMBER.findall(generation.split(SPLIT)[0].replace(",", ""))
    gold_n = float(_NUMBER.findall(gold.replace(",", ""))[-1])
    if not pred:
        return False, None
    return float(pred[-1]) == gold_n, float(pred[-1])


# ---- AQuA ------------------------------------------------------------------------------------
def aqua_question(row: dict) -> str:
    return f"Question: {row['question']}\nOption:\n" + "\n".join(row["options"]) + "\nLet's think step by step\n"


def aqua_exemplar(row: dict) -> str:
    return aqua_question(row) + f"{row['rationale'].strip()}\nThe answer is {row['correct']}.\n"


def aqua_correct(generation: str, row: dict) -> bool:
    """Official ``evaluate_aqua_answer_cot``: the option text or "X)" appears in the extracted answer,
    and not every option letter does."""
    pred = generation.split("answer is")[1] if "answer is" in generation else generation
    pred = pred.split(SPLIT)[0].strip()
    target = row["correct"]
    option = next((o for o in row["options"] if o.startswith(target + ")")), target + ")")
    answer_text = option.split(target + ")")[-1].split("\n")[0]
    all_listed = all(f"{x})" in pred for x in "ABCD")
    if answer_text and answer_text in pred:
        return not all_listed
    return (target + ")" in pred) and not all_listed


# ---- BBH -------------------------------------------------------------------------------------
OPTIONS = [f"({chr(c)})" for c in range(ord("A"), ord("Z") + 1)]


def bbh_extract(generation: str, multiple_choice: bool) -> str:
    """Official ``extract_bbh_ans``."""
    ans = generation.split(SPLIT)[0].strip().strip(".")
    parts = ans.split("answer is ")
    if len(parts) == 1:
        return ans
    ans = parts[-1].strip()
    if multiple_choice:
        return next((o for o in OPTIONS if o in ans), ans)
    return ans[:-1] if ans.endswith(".") and len(ans) > 1 else ans


def pick_shots(rows: list[dict], k: int, seed: int) -> list[dict]:
    return random.Random(seed).sample(rows, k) if k else []
