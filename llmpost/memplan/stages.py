"""What each stage holds at once, phase by phase, turned into estimates (estimate.py).

    sft    the policy, trained                                         (TRL SFTTrainer, fused LM head)
    rm     one sequence-classification model; chosen + rejected per forward
    prm    one token-classification model (the same one-output head); one solution per sequence
    dpo    the policy; chosen + rejected per forward; the reference is the same weights
           with the adapter disabled under LoRA/QLoRA, a second frozen copy in full
           fine-tuning (none while training with precompute_ref)
    kto    as dpo, with one response per row; its KL estimate's shifted rows go through
           without gradients, like the reference
    grpo   the policy; a reference copy only when beta > 0 and not LoRA; generation of
           batch x grad_accum completions (KV cache); vLLM colocate reserves its share
    ppo    the policy with a value head on its trunk; the reference (disabled adapter, or
           a frozen copy in full fine-tuning); each `rm:` reward model, frozen; rollouts
           (KV cache); full logits over the response tokens (llmpost's own PPO)
    judge  the policy sampling responses; the local judge model is a separate phase
    eval   the model generating

Every training stage also runs a held-out evaluation (generation) before and after
training; its peak is a phase of its own. The stage's peak is its largest phase.
Configs are read with getattr and defaults so a stage's new fields never break the plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmpost.config.base import MODEL_EVAL_TOKENS
from llmpost.evaluation.generation import default_batch
from llmpost.memplan.architecture import Architecture, find_architecture
from llmpost.memplan.estimate import (
    Estimate,
    Part,
    Workload,
    frozen_model,
    kv_bytes_per_token,
    kv_cache,
    lm_head,
    train_step,
    weights,
)

GiB = 1024**3
# What a process needs beyond what torch allocates. On a GPU: the CUDA context and
# cuBLAS/cuDNN workspaces (~0.75 GiB), plus ~10% caching-allocator fragmentation.
CUDA_CONTEXT_BYTES = 0.75 * GiB
CUDA_FRAGMENTATION = 0.10
# On CPU: the resident size of an idle python process that has imported what a stage
# imports (torch, transformers, trl, peft, datasets, accelerate, matplotlib) and run one
# tiny forward/backward pass: 521 MiB on Linux x86_64 with torch 2.13 / transformers 5.23 /
# trl 1.16; tests/benchmarks/bench_plan.py measures it again next to every run.
CPU_RUNTIME_BYTES = 520 * 1024**2
TRL_STAGES = {"sft", "dpo", "kto", "grpo"}


@dataclass
class StagePlan:
    """One stage's memory plan: an estimate per phase, the peak, and what it assumed."""

    label: str  # the stage, or the stage id inside a recipe
    stage: str
    model: str
    arch: Architecture
    method: str
    device: str
    phases: dict[str, Estimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reserved_fraction: float = 0.0  # share of the GPU vLLM (colocate) reserves for itself

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda name: self.phases[name].total)

    @property
    def peak(self) -> Estimate:
        return self.phases[self.peak_phase]

    @property
    def allocated(self) -> float:
        """Peak bytes the framework allocates (comparable to torch.cuda.max_memory_allocated)."""
        return self.peak.total - self.runtime

    @property
    def runtime(self) -> float:
        return sum(p.bytes for p in self.peak.parts if p.name == "runtime")

    def needed(self, device_bytes: float | None = None) -> float:
        """Bytes the device must have: a GPU adds its context, fragmentation and vLLM's reserved share
        (of `device_bytes`); on CPU the runtime is already one of the parts."""
        if self.device == "cuda":
            reserved = self.reserved_fraction * (device_bytes or 0.0)
            return self.allocated * (1 + CUDA_FRAGMENTATION) + CUDA_CONTEXT_BYTES + reserved
        return self.peak.total


def method_of(cfg) -> str:
    if getattr(cfg, "qlora", False):
        return "qlora"
    lora = getattr(cfg, "lora", None)
    return "lora" if lora is not None and lora.enabled else "full"


def bf16_of(cfg, device: str) -> bool:
    """llmpost's default: bf16 on a GPU (the 24 GB consumer cards all support it), fp32 on CPU."""
    value = getattr(cfg, "bf16", None)
    return (device == "cuda") if value is None else bool(value)


def workload_of(cfg, arch: Architecture, device: str, *, method: str, sequences: int, seq_len: int,
                lm_head: str = "fused", adapter_r: int | None = None) -> Workload:
    trainer = getattr(cfg, "trainer", {}) or {}
    lora = getattr(cfg, "lora", None)
    return Workload(
        method=method,
        lora_r=adapter_r or (lora.r if lora is not None else 16),
        lora_targets=(lora.target_modules if lora is not None else "all-linear"),
        sequences=sequences,
        seq_len=seq_len,
        gradient_checkpointing=bool(getattr(cfg, "gradient_checkpointing", False) or trainer.get("gradient_checkpointing")),
        optim=str(trainer.get("optim", "adamw_torch_fused")),
        bf16=bf16_of(cfg, device),
        lm_head=lm_head,
    )


def plan_stage(stage: str, cfg, *, device: str = "cuda", store=None, label: str | None = None,
               arch: Architecture | None = None, input_method: str | None = None) -> StagePlan:
    """The memory plan of `stage` run with resolved config `cfg` on one `device` ('cuda' or 'cpu').

    `arch` overrides the model lookup (e.g. `--model-config`); `input_method` says the input is
    an adapter trained with that method (a recipe's earlier LoRA stage), which training continues.
    """
    model_ref = getattr(cfg, "model", None) or getattr(cfg, "policy", None) or "tiny"
    arch = arch or find_architecture(model_ref, store)
    adapter = adapter_settings(model_ref, store)
    method = method_of(cfg)
    if (adapter or input_method) and method == "full":
        method = input_method or "lora"  # an adapter input keeps training that adapter
    plan = StagePlan(label or stage, stage, model_ref, arch, method, device)
    if adapter:
        plan.notes.append(f"{model_ref} is a LoRA adapter (r={adapter['r']}): training continues it")
    build = {"sft": plan_sft, "rm": plan_rm, "prm": plan_prm, "dpo": plan_dpo, "kto": plan_kto, "grpo": plan_grpo,
             "ppo": plan_ppo}.get(stage)
    if build is not None:
        build(plan, cfg, adapter_r=adapter and adapter["r"])
        add_eval_phase(plan, cfg)
    elif stage in ("eval", "judge"):
        plan_inference(plan, cfg)
    else:
        from llmpost.errors import ConfigError

        raise ConfigError([f"the planner does not know stage {stage!r}"], hint="plan one of: sft, rm, prm, dpo, kto, grpo, ppo, judge, eval")
    if device == "cpu":
        for est in plan.phases.values():
            est.resident.insert(0, Part("runtime", CPU_RUNTIME_BYTES, "python + torch/transformers/TRL imported (measured idle process)"))
    if not arch.exact:
        plan.notes.append(f"model_type {arch.model_type!r} is sized as a Llama-style decoder: treat the figure as approximate")
    return plan


def seq_len_of(cfg) -> int:
    return int(getattr(cfg, "max_length", 512))


def plan_sft(plan: StagePlan, cfg, adapter_r=None) -> None:
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=cfg.batch_size,
                       seq_len=seq_len_of(cfg), adapter_r=adapter_r)
    plan.phases["training"] = train_step(plan.arch, work)
    plan.notes.append(f"every example taken at max_length={work.seq_len} tokens (the worst case a batch can reach)")


def plan_rm(plan: StagePlan, cfg, adapter_r=None) -> None:
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=2 * cfg.batch_size,
                       seq_len=seq_len_of(cfg), lm_head="none", adapter_r=adapter_r)
    plan.phases["training"] = train_step(plan.arch, work, kind="seqcls")
    plan.notes.append("each prompt counted with 2 responses (a chosen/rejected pair); rankings of K responses "
                      "hold K per prompt")


def plan_prm(plan: StagePlan, cfg, adapter_r=None) -> None:
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=cfg.batch_size,
                       seq_len=seq_len_of(cfg), lm_head="none", adapter_r=adapter_r)
    plan.phases["training"] = train_step(plan.arch, work, kind="seqcls")  # the same one-output head, read at every step
    plan.notes.append(f"every solution taken at max_length={work.seq_len} tokens (the worst case a batch can reach)")


def plan_dpo(plan: StagePlan, cfg, adapter_r=None) -> None:
    plan_against_reference(plan, cfg, sequences=2 * cfg.batch_size, adapter_r=adapter_r)  # chosen + rejected


def plan_kto(plan: StagePlan, cfg, adapter_r=None) -> None:
    plan_against_reference(plan, cfg, sequences=cfg.batch_size, adapter_r=adapter_r)  # one response per row


def plan_against_reference(plan: StagePlan, cfg, *, sequences: int, adapter_r=None) -> None:
    """A policy trained against the model it started from (dpo, kto): `sequences` per forward, plus the reference."""
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=sequences,
                       seq_len=seq_len_of(cfg), adapter_r=adapter_r)
    est = train_step(plan.arch, work)
    if plan.method == "full" and not getattr(cfg, "precompute_ref", False):
        est.resident.append(frozen_model(plan.arch, "full", "reference"))
        plan.notes.append("full fine-tuning keeps a frozen reference copy; --precompute-ref or --lora avoid it")
    elif plan.method != "full":
        plan.notes.append("reference = the same weights with the adapter disabled: no second copy")
    plan.phases["training"] = est


def reserve_vllm(plan: StagePlan, cfg) -> bool:
    """With `vllm: true`, vLLM samples instead of the trained model: reserve its GPU share (colocate). True if so."""
    if not getattr(cfg, "vllm", False):
        return False
    if getattr(cfg, "vllm_mode", "colocate") == "colocate":
        plan.reserved_fraction = float(getattr(cfg, "vllm_gpu_memory_utilization", 0.3))
        plan.notes.append(f"vLLM (colocate) reserves {plan.reserved_fraction:.0%} of the GPU for its weights and KV cache")
    else:
        plan.notes.append("vLLM (server) samples on another GPU: not counted here")
    return True


def plan_grpo(plan: StagePlan, cfg, adapter_r=None) -> None:
    completion = int(getattr(cfg, "max_completion_length", 256))
    total = seq_len_of(cfg) + completion
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=cfg.batch_size,
                       seq_len=total, adapter_r=adapter_r)
    est = train_step(plan.arch, work)
    if getattr(cfg, "beta", 0.0) > 0 and plan.method == "full":
        est.resident.append(frozen_model(plan.arch, "full", "reference"))
        plan.notes.append("beta > 0 in full fine-tuning keeps a frozen reference copy")
    plan.phases["training"] = est
    generating = cfg.batch_size * int(getattr(cfg, "grad_accum", 1))
    if reserve_vllm(plan, cfg):
        return
    gen = Estimate(resident=list(est.resident))
    gen.transient.append(kv_cache(plan.arch, generating, total, work.bf16))
    plan.phases["generation"] = gen
    plan.notes.append(f"prompts taken at max_length={seq_len_of(cfg)} + {completion} completion tokens")


def plan_ppo(plan: StagePlan, cfg, adapter_r=None) -> None:
    rollout = getattr(cfg, "rollout", None)
    response = int(getattr(rollout, "max_new_tokens", 32))
    seq_len = seq_len_of(cfg)
    ppo = getattr(cfg, "ppo", None)
    per_pass = max(1, int(getattr(ppo, "mini_batch_size", cfg.batch_size)) // max(1, int(getattr(cfg, "grad_accum", 1))))
    work = workload_of(cfg, plan.arch, plan.device, method=plan.method, sequences=per_pass, seq_len=seq_len,
                       lm_head="full", adapter_r=adapter_r)
    # llmpost's PPO applies the LM head to the response positions only.
    est = train_step(plan.arch, replace(work, lm_head="none"))
    est.transient.append(lm_head(plan.arch, replace(work, seq_len=response)))
    est.resident.append(Part("value head", plan.arch.hidden * 16, "hidden -> 1, fp32 with its AdamW states"))
    if plan.method == "full":
        est.resident.append(frozen_model(plan.arch, "full", "reference"))
        plan.notes.append("full fine-tuning keeps a frozen reference copy; --lora/--qlora use the disabled adapter")
    else:
        plan.notes.append("reference = the policy with its adapter disabled: no second copy")
    for ref in reward_models(cfg):
        rm_arch = try_architecture(ref, plan)
        est.resident.append(frozen_model(rm_arch, "qlora" if plan.method == "qlora" else "full", f"reward model {ref}",
                                         kind="seqcls"))
    plan.phases["training"] = est
    if not reserve_vllm(plan, cfg):
        gen = Estimate(resident=list(est.resident))
        gen.transient.append(kv_cache(plan.arch, cfg.batch_size, seq_len, work.bf16))
        plan.phases["rollout"] = gen
    plan.notes.append(f"rollouts of {cfg.batch_size} prompts x {seq_len} tokens; updates of {per_pass} sequences")


def plan_inference(plan: StagePlan, cfg) -> None:
    bf16 = bf16_of(cfg, plan.device)
    method = "qlora" if getattr(cfg, "qlora", False) else "full"
    est = Estimate(resident=[weights(plan.arch, method)])
    new = getattr(cfg, "max_new_tokens", None) or MODEL_EVAL_TOKENS
    prompts = getattr(cfg, "batch_size", None) or default_eval_batch(plan, 512 + new, bf16)
    batch = prompts * int(getattr(cfg, "samples", 1))
    est.transient.append(kv_cache(plan.arch, batch, 512 + new, bf16))
    plan.phases["generation"] = est
    plan.notes.append(f"prompts taken at 512 tokens + {new} generated, {batch} sequences at once")


def add_eval_phase(plan: StagePlan, cfg) -> None:
    """The held-out generation before/after training: the trained weights, optimizer states still held."""
    settings = getattr(cfg, "eval", None)
    if settings is None or not settings.enabled:
        return
    train = plan.phases["training"]
    est = Estimate(resident=list(train.resident))
    new = cfg.eval_tokens(is_tiny=False)  # a real model's budget: tiny's is smaller and its memory no concern
    total, bf16 = seq_len_of(cfg) + new, bf16_of(cfg, plan.device)
    batch = settings.batch_size or default_eval_batch(plan, total, bf16)
    est.transient.append(kv_cache(plan.arch, batch, total, bf16))
    plan.phases["evaluation"] = est
    plan.notes.append(f"held-out evaluation generates {batch} prompts at once, each taken at "
                      f"max_length + {new} tokens (lower eval.batch_size if it is the peak)")


def default_eval_batch(plan: StagePlan, total_len: int, bf16: bool) -> int:
    """The prompts generated at once when the config leaves it to the device (generation.default_batch)."""
    return default_batch(plan.device, total_len * kv_bytes_per_token(plan.arch, bf16))


def reward_models(cfg) -> list[str]:
    """The models that `rm:` and `prm:` rewards load (a PRM, like an RM, is a model with a one-output head)."""
    from llmpost.rewards.process_reward import parse_prm_arg
    from llmpost.rewards.spec import parse_reward_spec

    refs = []
    for spec in getattr(cfg, "rewards", []) or []:
        name, _ = parse_reward_spec(str(spec))
        kind, _, arg = name.partition(":")
        if kind == "rm":
            refs.append(arg)
        elif kind == "prm":
            refs.append(parse_prm_arg(arg)[0])
    return refs


def try_architecture(ref: str, plan: StagePlan) -> Architecture:
    """A reward model's shape, or the policy's when it cannot be found offline (said in the notes)."""
    from llmpost.errors import ModelError

    try:
        return find_architecture(ref)
    except ModelError:
        plan.notes.append(f"reward model {ref!r} not found offline: sized like the policy")
        return plan.arch


def adapter_settings(ref: str, store=None) -> dict | None:
    """{'r': rank} when `ref` is a LoRA adapter (artifact or directory), else None."""
    path = Path(ref).expanduser()
    artifact = store.try_resolve(ref) if store is not None else None
    if artifact is not None:
        path = artifact.path / "model"
    cfg_path = path / "adapter_config.json"
    if not cfg_path.is_file():
        return None
    cfg = json.loads(cfg_path.read_text())
    return {"r": int(cfg.get("r", 16))}


