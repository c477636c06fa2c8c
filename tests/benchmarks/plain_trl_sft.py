"""The plain-TRL equivalent of `llmpost sft --set eval.enabled=false` (used by bench_sft.py).

Same tiny model, same built-in data, same steps, batch and learning rate; saves the model.
"""

from __future__ import annotations

import sys

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from llmpost.data.builtin import load_builtin
from llmpost.models.tiny import tiny_path


def main(steps: int, batch_size: int, out: str) -> None:
    path = tiny_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    rows = [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in load_builtin("arith-sft", "train")]
    args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=3e-3,
                     lr_scheduler_type="cosine", weight_decay=0.0, logging_steps=5, save_strategy="no",
                     report_to="none", use_cpu=True, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    trainer.save_model(out)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
