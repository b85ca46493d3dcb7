"""TRL: a grader as GRPOTrainer's reward, in a real two-step training run, and the reward function's own contract.

The trainer run needs the `rl` extra (torch, TRL); the model and tokenizer are built here, randomly initialised
from a fixed word list, so nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import glob
import math
import threading
from pathlib import Path
from typing import Any

import pytest

import graders
from graders.integrations.trl import make_async_reward, make_reward

PYTHON = {
    "type": "python",
    "name": "length",
    "source": (
        "def grade(sample, item):\n"
        "    if item['answer'] == 'boom':\n"
        "        raise ValueError('no reward for this prompt')\n"
        "    return min(1.0, len(sample['output_text'].split()) / 8)\n"
    ),
}
MULTI = {
    "type": "multi",
    "name": "answer_and_length",
    "graders": {
        "length": PYTHON,
        "mentions": {"type": "string_check", "name": "mentions", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "ilike"},
    },
    "calculate_output": "0.5 * length + 0.5 * mentions",
}
WORDS = "the a cat dog sat ran on mat log is what two plus one three four yes no answer boom".split()
PROMPTS = ["what is two plus one", "the cat sat on the", "the dog ran on the", "what is three plus one"]
ANSWERS = ["three", "mat", "boom", "four"]


class Recorder:
    """Stands where TRL passes `log_extra` and `log_metric`: keeps what a reward function logged."""

    def __init__(self) -> None:
        self.extra: dict[str, list[Any]] = {}
        self.metric: dict[str, float] = {}

    def kwargs(self, **columns: list[Any]) -> dict[str, Any]:
        return {"log_extra": self.extra.__setitem__, "log_metric": self.metric.__setitem__, "trainer_state": None, **columns}


def test_errored_sample_is_none_and_extras_are_logged() -> None:
    reward = make_reward(MULTI)
    log = Recorder()
    completions = ["three three", "a b c d e f g h i", "three"]
    out = reward(prompts=PROMPTS[:3], completions=completions, completion_ids=[[0]] * 3, **log.kwargs(answer=["three", "mat", "boom"]))
    expected = graders.compile(MULTI).run_many([{"model_sample": c, "item": {"prompt": p, "answer": a}} for c, p, a in zip(completions, PROMPTS, ["three", "mat", "boom"])])
    assert out == [expected[0].reward, expected[1].reward, None]
    assert reward.__name__ == "answer_and_length"
    assert log.extra["answer_and_length/errored"] == [False, False, True]
    assert log.extra["answer_and_length/error"] == [None, None, "python_grader_runtime_error"]
    assert log.extra["answer_and_length/sub_reward/mentions"] == [1.0, 0.0, 0.0]
    assert log.metric["rewards/answer_and_length/errored"] == pytest.approx(1 / 3)
    assert set(log.metric) == {"rewards/answer_and_length/errored", "rewards/answer_and_length/sub_reward/length/mean", "rewards/answer_and_length/sub_reward/mentions/mean"}
    reward.close()


def test_conversational_completion_is_the_assistant_sample_with_tool_calls() -> None:
    """A list of messages becomes a structured sample: the last assistant content, every tool call with its
    arguments as a JSON string (TRL parses them to a dict)."""
    grader = {"type": "python", "name": "tools", "source": "def grade(sample, item):\n    return [sample['output_text'], sample['output_tools']]\n"}
    seen = {
        "type": "string_check", "name": "tool", "operation": "eq", "reference": "{{ item.want }}",
        "input": "{{ sample.output_tools[1].function.name }}:{{ sample.output_tools[1].function.arguments }}:{{ sample.output_text }}",
    }
    completion = [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"q": "cat"}}}]},
        {"role": "tool", "name": "lookup", "content": "a cat"},
        {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "a cat"}],
         "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "answer", "arguments": {"x": 1}}}]},
    ]
    prompt = [{"role": "user", "content": "what is it"}]
    out = make_reward(seen)(prompts=[prompt], completions=[completion], want=['answer:{"x": 1}:It is a cat'])
    assert out == [1.0]
    assert make_reward(grader, log=False)(prompts=[prompt], completions=[[{"role": "user", "content": "no assistant"}]]) == [None]


def test_mapping_picks_sample_and_item_paths() -> None:
    check = {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}", "reference": "{{ item.gold }}", "operation": "eq"}
    reward = make_reward(check, item={"gold": "meta.answer"}, log=False)
    out = reward(prompts=["p", "q"], completions=["x", "y"], meta=[{"answer": "x"}, {"other": 1}])
    assert out == [1.0, None]  # the second row has no meta.answer: that row alone is errored
    whole = make_reward(check, sample="draft", item="meta", log=False)
    assert whole(prompts=["p"], completions=["ignored"], draft=["x"], meta=[{"gold": "x"}]) == [1.0]


def test_mapping_errors_name_the_field() -> None:
    with pytest.raises(TypeError, match="'sampel'"):
        make_reward(MULTI, sampel="completion")
    with pytest.raises(ValueError, match="item must be a path"):
        make_reward(MULTI, item=3)
    with pytest.raises(ValueError, match="dotted path"):
        make_reward(MULTI, sample="meta..x")
    reward = make_reward(MULTI, item={"answer": "solution"})
    with pytest.raises(ValueError, match="'solution'.*passed: answer, completion, prompt"):
        reward(prompts=["p"], completions=["c"], answer=["a"])
    with pytest.raises(graders.GraderValidationError):
        make_reward({**MULTI, "calculate_output": "length +"})


def test_async_reward_runs_on_a_running_loop_in_another_thread() -> None:
    """TRL awaits async rewards on its own loop thread; the sync one works from any thread (no SIGALRM)."""
    reward, areward = make_reward(MULTI, log=False), make_async_reward(MULTI, log=False)
    assert asyncio.iscoroutinefunction(areward) and not asyncio.iscoroutinefunction(reward)
    results: dict[str, Any] = {}

    def thread() -> None:
        results["sync"] = reward(prompts=PROMPTS, completions=ANSWERS, answer=ANSWERS)
        results["async"] = asyncio.run(areward(prompts=PROMPTS, completions=ANSWERS, answer=ANSWERS))

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(120)
    assert results["sync"] == results["async"]
    assert results["sync"][2] is None and all(isinstance(r, float) for i, r in enumerate(results["sync"]) if i != 2)


# -- a real GRPOTrainer ----------------------------------------------------------------------------------------------


def _tiny_model_and_tokenizer() -> tuple[Any, Any]:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>", padding_side="left"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


def test_grpo_trainer_logs_the_rewards_run_many_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two GRPO steps with the multi (a python sub-grader) as sync and async reward: each logged completion's
    reward equals `run_many` on it, and the prompt whose python grade fails is None (NaN) with no advantage."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # proves nothing is downloaded
    pytest.importorskip("trl")
    import pandas as pd
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model, tokenizer = _tiny_model_and_tokenizer()
    sync_reward = make_reward(MULTI)
    async_reward = make_async_reward(MULTI, name="answer_and_length_async")
    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8, num_generations=2, max_completion_length=8,
        learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True, bf16=False, save_strategy="no",
        log_completions=True, num_completions_to_print=0, seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[sync_reward, async_reward], args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS, "answer": ANSWERS}),
    )
    trainer.train()

    files = sorted(glob.glob(str(tmp_path / "completions" / "*.parquet")))
    assert len(files) == 2  # one table per step
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    answer_of = dict(zip(PROMPTS, ANSWERS))
    rows = [{"model_sample": c, "item": {"prompt": p, "answer": answer_of[p]}} for p, c in zip(table["prompt"], table["completion"])]
    expected = graders.compile(MULTI).run_many(rows)
    for column in ("answer_and_length", "answer_and_length_async"):
        logged = table[column].tolist()
        for got, want in zip(logged, expected):
            if want.failed:
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want.reward, abs=1e-6)  # TRL keeps rewards as float32
    boom = table["prompt"] == "the dog ran on the"
    assert boom.any() and (table.loc[boom, "advantage"] == 0.0).all()
    assert table.loc[boom, "answer_and_length/errored"].all() and not table.loc[~boom, "answer_and_length/errored"].any()
    logged_metrics = {k for entry in trainer.state.log_history for k in entry}
    assert {"rewards/answer_and_length/mean", "rewards/answer_and_length/errored", "rewards/answer_and_length/sub_reward/mentions/mean"} <= logged_metrics
