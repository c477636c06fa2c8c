"""A model with a new one-output scoring head, ready to train: reward models (`rm`) and process reward models (`prm`).

`rm` reads the head once, at a sequence's last token (a sequence classifier); `prm` at the
last token of every step (a token classifier). Everything else about starting one is the
same, and lives here.
"""

from __future__ import annotations

from dataclasses import replace

# The peft task of each kind of scorer: a LoRA adapter of that task saves the new head whole with it.
TASK_TYPES = {"seqcls": "SEQ_CLS", "tokcls": "TOKEN_CLS"}


def scorer_to_train(src, cfg, kind: str):
    """A one-output classifier of `kind` ("seqcls" or "tokcls") on `src`, ready to train (full, LoRA or QLoRA).

    On an adapter artifact (e.g. a LoRA SFT): full training merges the adapter into the
    base; LoRA training goes on training the SFT adapter itself (its rank and targets),
    now as a classification adapter with the score head, so the saved adapter alone, on
    the base, holds everything.
    """
    from llmpost.models.load import add_lora, load_model

    task = TASK_TYPES[kind]
    model = load_model(replace(src, adapter_path=None), kind=kind, qlora=cfg.qlora,
                       trust_remote_code=cfg.trust_remote_code)
    if not src.adapter_path:
        return add_lora(model, cfg.lora, task, qlora=cfg.qlora) if cfg.uses_lora else model
    from peft import (
        PeftConfig,
        PeftModel,
        get_peft_model_state_dict,
        load_peft_weights,
        set_peft_model_state_dict,
    )

    sft = PeftConfig.from_pretrained(src.adapter_path)
    if not cfg.uses_lora:
        sft.task_type = None  # a causal-LM adapter's weights, merged into the classifier's backbone
        merged = PeftModel.from_pretrained(model, src.adapter_path, config=sft).merge_and_unload()
        return merged.requires_grad_(True)  # loading an adapter for inference froze the base
    targets = sorted(sft.target_modules) if isinstance(sft.target_modules, set) else sft.target_modules
    settings = cfg.lora.model_copy(update={"r": sft.r, "alpha": sft.lora_alpha, "target_modules": targets})
    model = add_lora(model, settings, task, qlora=cfg.qlora)
    # The SFT adapter has no score head: keep the new one, take every LoRA weight from the SFT.
    weights = {**get_peft_model_state_dict(model), **load_peft_weights(src.adapter_path)}
    set_peft_model_state_dict(model, weights)
    return model
