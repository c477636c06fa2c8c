"""The reference model of the offline preference stages (dpo, kto), and the log-probs measured against it.

Both stages train against the model they start from (`--model`), kept the same way
(TRL's DPOTrainer and KTOTrainer take the same arguments):

    full fine-tuning        a second, frozen copy of the input model; with
                            `precompute_ref: true` its log-probs are computed once
                            before training and no copy is kept while training
    --lora / --qlora        the same weights with the new adapter disabled, so no
                            second copy is loaded (under --qlora: the 4-bit base
                            the adapter trains on)
    input is an adapter     training continues that adapter (as `llmpost sft`
      (e.g. `sft --lora`)   does); the reference is base + the adapter as it was,
                            kept by TRL as a frozen "ref" copy of the adapter weights.
                            Disabling the adapter would be wrong here: it gives
                            the base model under the SFT adapter, not the model
                            the stage started from. The copy is dropped before saving.

The implicit reward a stage reports is beta * (log pi(y|x) - log ref(y|x)), summed
over the response's tokens.
"""

from __future__ import annotations


def reference_model(cfg, src):
    """The frozen reference copy to hand the trainer, or None where TRL finds the reference itself.

    None under LoRA (the adapter disabled), for an input adapter (TRL's frozen "ref" copy of it)
    and with `precompute_ref` (log-probs computed once, before training).
    """
    from llmpost.models.load import load_model

    if cfg.uses_lora or src.adapter_path or cfg.precompute_ref:
        return None
    return load_model(src, trust_remote_code=cfg.trust_remote_code).eval()


def sequence_logps(model, batch):
    """Summed log-probs of each sequence's completion tokens, through TRL's fused LM head."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    log_probs = model(**inputs, labels=labels, use_cache=False, fused_lm_head=True).log_probs
    return log_probs[:, -(labels.shape[1] - 1):].sum(dim=1)


def drop_reference_adapter(model) -> None:
    """Remove TRL's frozen "ref" copy of an input adapter, so the artifact holds only the trained one."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")


def reference_text(cfg, src, stage: str) -> str:
    """What the reference was during training, for the model card."""
    if src.adapter_path:
        return f"the input adapter model as it was before {stage} (a frozen copy of its adapter weights)"
    if cfg.uses_lora:
        return "the input model: this adapter disabled" + (" (4-bit base)" if cfg.qlora else "")
    if cfg.precompute_ref:
        return "the input model, its log-probs precomputed before training"
    return "the input model, a frozen second copy"
