"""Two real GRPOTrainer steps with a grader as the sync and the async reward, in a process of their own (torch and
TRL stay out of the test process, which forks later). Writes TRL's completions parquet under OUT and the logged
metric names to OUT/metrics.json.

    python grpo_two_steps.py OUT GRADER_JSON PROMPTS_JSON ANSWERS_JSON
"""

from __future__ import annotations

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # proves nothing is downloaded

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from graders.integrations.trl import make_async_reward, make_reward  # noqa: E402

WORDS = "the a cat dog sat ran on mat log is what two plus one three four yes no answer boom".split()


def tiny_model_and_tokenizer() -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A one-layer Llama, randomly initialised, and a word-level tokenizer of WORDS: built here, nothing fetched."""
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


def main() -> None:
    out, grader, prompts, answers = sys.argv[1], *(json.loads(a) for a in sys.argv[2:5])
    torch.manual_seed(0)
    model, tokenizer = tiny_model_and_tokenizer()
    name = grader["name"]
    args = GRPOConfig(
        output_dir=out, max_steps=2, per_device_train_batch_size=8, num_generations=2, max_completion_length=8,
        learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True, bf16=False, save_strategy="no",
        log_completions=True, num_completions_to_print=0, seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[make_reward(grader), make_async_reward(grader, name=f"{name}_async")], args=args,
        processing_class=tokenizer, train_dataset=Dataset.from_dict({"prompt": prompts, "answer": answers}),
    )
    trainer.train()
    with open(os.path.join(out, "metrics.json"), "w") as sink:
        json.dump(sorted({key for entry in trainer.state.log_history for key in entry}), sink)


if __name__ == "__main__":
    main()
