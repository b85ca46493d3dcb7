"""The exported reward file through verl's own loader and managers, in a process of its own (torch stays out of the
test process, which forks later). Prints what verl made of two samples, as JSON.

    python verl_managers.py REWARD_PY WORKDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from verl import DataProto
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager
from verl.workers.reward_manager import BatchRewardManager


def config(path: Path, name: str, tokenizer_dir: str = "") -> Any:
    """The part of verl's trainer config its reward loader and managers read."""
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": tokenizer_dir, "tokenizer_path": None}},
        "reward": {
            "num_workers": 1,
            "custom_reward_function": {"path": str(path), "name": name, "reward_kwargs": {}},
            "reward_manager": {"source": "register", "name": "naive", "module": {"path": None, "name": None}},
            "reward_model": {"enable": False, "enable_resource_pool": False},
            "sandbox_fusion": None,
        },
    })


def batch(workdir: Path) -> tuple[DataProto, PreTrainedTokenizerFast]:
    """Two samples laid out as verl's rollout leaves them (left-padded prompts, right-padded responses)."""
    words = ["<pad>", "<unk>", "<bos>", "<eos>", "capital", "of", "france", "Paris", "Lyon"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>", padding_side="left")
    tokenizer.save_pretrained(str(workdir / "tokenizer"))
    prompts = tokenizer(["capital of france", "capital of france"], padding="max_length", max_length=4, return_tensors="pt")
    tokenizer.padding_side = "right"
    responses = tokenizer(["Paris <eos>", "Lyon <eos>"], padding="max_length", max_length=3, return_tensors="pt")
    tokenizer.padding_side = "left"
    data = DataProto.from_dict(
        tensors={"prompts": prompts["input_ids"], "responses": responses["input_ids"],
                 "attention_mask": torch.cat([prompts["attention_mask"], responses["attention_mask"]], dim=1)},
        non_tensors={
            "data_source": np.array(["toy", "toy"], dtype=object),
            "reward_model": np.array([{"ground_truth": "Paris"}, {"ground_truth": "Paris"}], dtype=object),
            "extra_info": np.array([{"difficulty": "hard"}, {"difficulty": "nope"}], dtype=object),
        },
    )
    return data, tokenizer


def main() -> None:
    path, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    data, tokenizer = batch(workdir)
    loaded = get_custom_reward_fn(config(path, "compute_score"))
    out: dict[str, Any] = {"loaded": loaded(data_source="toy", solution_str="Paris", ground_truth="Paris", extra_info={"difficulty": "easy"})}
    for name in ("compute_score", "compute_score_async"):
        manager = load_reward_manager(config(path, name, str(workdir / "tokenizer")), tokenizer)
        out[name] = [manager.loop.run_until_complete(manager.run_single(data[i : i + 1])) for i in range(len(data))]
    scored = BatchRewardManager(tokenizer, 0, loaded)(data, return_dict=True)
    out["batch"] = {"reward": scored["reward_tensor"].sum(dim=1).tolist(), "errored": [float(e) for e in scored["reward_extra_info"]["errored"]]}
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
