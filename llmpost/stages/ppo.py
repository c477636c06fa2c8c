"""`llmpost ppo`: actor-critic PPO against a reward model (or any reward), on llmpost's own trainer.

TRL 1.x has no PPOTrainer any more, so the algorithm lives in `llmpost.rl` (read
its package docstring first). Memory follows the single-GPU recipe: one base
model (4-bit under --qlora), the policy a LoRA adapter on it, the reference the
same base with the adapter off, the critic a value head on the policy's trunk,
the reward model a separate artifact (see `rl/policy.py` and `rl/value_head.py`
for the other cases and the reasons).

run(): resolve inputs -> build rewards -> load policy + reference -> build the
trainer -> evaluate before -> train (metrics.jsonl every step, a checkpoint in the
work dir every 10% of the steps: an interrupted run resumes there) -> evaluate
after -> save the policy. The held-out report holds exact match, the mean reward and
each reward's mean (the reward model's score for `rm:REF`) of greedy answers,
before and after, with intervals and the paired change (`evaluation/report.py`; every
answer in eval_items.jsonl), and the KL the policy ended at.

A process reward model (`prm:REF`) is a sequence reward like any other (its step scores
aggregated), or, with `process_rewards: dense`, rewards each step on the token that ends
it, so GAE credits the steps one by one; the other rewards stay on the last token, and a
response's dense rewards sum to the aggregate it would have had
(`rewards/process_reward.py` says why that scale, `rl/dense.py` how steps find tokens).

Rollouts are sampled by the policy itself (`rl/rollout.py`), or with `--vllm` by vLLM: in this
process (`vllm_mode: colocate`, on `vllm_gpu_memory_utilization` of the GPU) or from a
`trl vllm-serve` (`server`, at `vllm_server_url`); see `rl/vllm_rollout.py`. Either way
the policy itself computes every log-prob PPO uses.

Under torchrun / `accelerate launch` every process samples its own prompts and
DDP averages the gradients; only the main process evaluates and writes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llmpost.config.base import (
    EvalSettings,
    LearningRates,
    learning_rate,
    learning_rate_field,
    qlora_vllm_problems,
)
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
from llmpost.stages.context import StageContext, StageResult, stage_inputs
from llmpost.stages.rewarded import RewardedConfig

DEFAULT_DATA = "builtin:arith-prompts"


class Config(RewardedConfig):
    # PPO takes several updates per batch, so these sit below the SFT defaults; the tiny model's was
    # tuned on the built-in task. LoRA on SmolLM2 (exact match, 40 steps of 16, seed 0): at 1e-5 the
    # policy barely moved (KL 0.03, +0.020 [-0.008, +0.048] held-out exact match); 1e-4 gave
    # +0.078 [+0.030, +0.124] at KL 0.46.
    default_learning_rates: ClassVar[LearningRates] = LearningRates(tiny=3e-4, lora=1e-4, full=1e-6)
    model: str = Field("tiny", description="the policy to improve (--policy): an artifact ref such as `sft`, 'tiny', a local dir or a hub id")
    data: str = Field(DEFAULT_DATA, description="prompts to answer, with the columns the rewards read (answer, tests, ...)")
    rewards: list[str] = Field(
        ["exact_match"],
        description="the sequence reward, summed as NAME[=WEIGHT]: rm:REF, prm:REF[:agg=min|prod|last|mean], "
                    "exact_match, math, format[:REGEX], length[:min=N,max=M], code_exec, judge:SPEC, "
                    "path/file.py:fn, module:fn",
    )
    process_rewards: Literal["aggregate", "dense"] = Field(
        "aggregate", description="a prm:REF reward as one score at the end (aggregate) or each step's share on the "
                                 "token that ends the step (dense; needs exactly one prm: reward)"
    )
    batch_size: int = Field(16, ge=1, description="prompts per device per PPO step, one sampled response each")
    logging_steps: int = Field(1, ge=1, description="write metrics.jsonl every N PPO steps")
    learning_rate: float | None = learning_rate_field(default_learning_rates, "learning rate of policy and value head")
    rollout: RolloutSettings = Field(default_factory=RolloutSettings, description="how responses are sampled")
    kl: KLSettings = Field(default_factory=KLSettings, description="the KL penalty towards the reference policy")
    ppo: PPOSettings = Field(default_factory=PPOSettings, description="the PPO update: epochs, minibatches, clipping, GAE")
    vllm: bool = Field(False, description="sample rollouts with vLLM (needs `pip install vllm` and a CUDA GPU)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="vLLM in the training process (colocate) or a separate `trl vllm-serve` (server)"
    )
    vllm_server_url: str | None = Field(
        None, description="server mode: the base URL of `trl vllm-serve`; null = TRL's http://0.0.0.0:8000"
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, lt=1, description="colocate mode: the GPU share vLLM takes; the policy trains in the rest"
    )
    eval: EvalSettings = Field(
        default_factory=EvalSettings,
        description="held-out evaluation (default data: the test split of a builtin:... prompt set)",
    )

    @model_validator(mode="after")
    def consistent(self) -> Config:
        problems = []
        if self.trainer:
            problems.append("ppo runs llmpost's own PPO loop, not a transformers Trainer: it takes no `trainer:` "
                            "arguments (nor --deepspeed/--fsdp); its settings are under rollout:, kl: and ppo:")
        if self.batch_size % self.ppo.mini_batch_size:
            problems.append(f"batch_size ({self.batch_size}) must be a multiple of ppo.mini_batch_size "
                            f"({self.ppo.mini_batch_size})")
        if self.ppo.mini_batch_size % self.grad_accum:
            problems.append(f"ppo.mini_batch_size ({self.ppo.mini_batch_size}) must be a multiple of grad_accum "
                            f"({self.grad_accum}): each minibatch is split into grad_accum passes")
        if self.max_length <= self.rollout.max_new_tokens:
            problems.append(f"max_length ({self.max_length}) must exceed rollout.max_new_tokens "
                            f"({self.rollout.max_new_tokens}) to leave room for the prompt")
        problems += qlora_vllm_problems(self, self.vllm, self.vllm_mode)
        if self.vllm_server_url and self.vllm_mode != "server":
            problems.append("vllm_server_url is read only with vllm_mode=server: set vllm_mode=server or drop it")
        if self.process_rewards == "dense" and (n := len(process_reward_specs(self.rewards))) != 1:
            problems.append(f"process_rewards: dense places one process reward model's step rewards, and rewards "
                            f"holds {n} prm:REF ({', '.join(self.rewards)}): give exactly one (--reward prm:MY-PRM) "
                            "or set process_rewards: aggregate")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def process_reward_specs(specs: list[str]) -> list[str]:
    """The `prm:REF` rewards among `specs`."""
    from llmpost.rewards.spec import parse_reward_spec

    return [s for s in specs if parse_reward_spec(s)[0].partition(":")[0] == "prm"]


def inputs(cfg: Config) -> dict[str, list[str]]:
    from llmpost.rewards.registry import reward_model_refs

    return stage_inputs(cfg, models=tuple(reward_model_refs(cfg.rewards)))


def run(cfg: Config, ctx: StageContext) -> StageResult:
    from llmpost.data.formats import to_prompts
    from llmpost.rewards.registry import CombinedReward
    from llmpost.rl.vllm_check import check_vllm

    # Settings, rewards and rows are checked before the training libraries are imported (seconds).
    check_vllm(cfg)
    src = ctx.model(cfg.model)
    reward = CombinedReward(cfg.rewards, ctx.store)
    prompts = to_prompts(ctx.data(cfg.data).rows, cfg.data)
    reward.check_rows(prompts, cfg.data)
    held_out_ref = cfg.held_out_data()
    held_out_rows = to_prompts(ctx.data(held_out_ref).rows, held_out_ref)[: cfg.eval.max_samples] if held_out_ref else []
    if held_out_rows:
        reward.check_rows(held_out_rows, held_out_ref)

    from llmpost.evaluation.report import headline, write_items
    from llmpost.models.load import load_tokenizer
    from llmpost.rl.policy import load_policy, save_policy
    from llmpost.rl.trainer import PPOTrainer
    from llmpost.stages.heldout import HeldOut
    from llmpost.stages.training import checkpoint_interval, intra_op_threads

    accelerator = make_accelerator(cfg, src.is_tiny)
    is_main = ctx.is_main_process and accelerator.is_main_process
    if not held_out_rows and cfg.eval.enabled and is_main:
        ctx.console.print("[yellow]no held-out prompts: set eval.data to report exact match and reward[/yellow]")

    tokenizer = load_tokenizer(src, cfg.trust_remote_code)
    policy, reference = load_policy(src, qlora=cfg.qlora, lora=cfg.lora if cfg.uses_lora else None,
                                    trust_remote_code=cfg.trust_remote_code,
                                    gradient_checkpointing=cfg.gradient_checkpointing)
    rollouts = vllm_rollouts(cfg, policy, tokenizer, accelerator) if cfg.vllm else None  # None: transformers
    sequence_reward, step_reward = training_rewards(cfg, reward)
    trainer = PPOTrainer(
        policy, reference, tokenizer, sequence_reward, prompts, rollout=cfg.rollout, kl=cfg.kl, ppo=cfg.ppo,
        batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, learning_rate=learning_rate(cfg, src.is_tiny),
        steps=cfg.max_steps, epochs=cfg.epochs, warmup_ratio=cfg.warmup_ratio,
        max_prompt_length=max_prompt_length(cfg), seed=cfg.seed, accelerator=accelerator, rollouts=rollouts,
        step_reward_fn=step_reward,
    )

    # only the main process evaluates: the others train alongside it and write nothing
    held_out = HeldOut.of(cfg, src, held_out_rows if is_main else [], tokenizer, reward)
    with intra_op_threads(1 if src.is_tiny else None):
        before = held_out.before(trainer.policy)
        accelerator.wait_for_everyone()
        with StepReporter(ctx, trainer.steps, cfg.logging_steps, enabled=is_main) as reporter:
            # A checkpoint every 10% of the steps (at least 10 apart); a rerun of the same config resumes from it.
            history = trainer.train(on_step=reporter.step, checkpoint_dir=ctx.work_dir,
                                    checkpoint_every=checkpoint_interval(trainer.steps))
        after = held_out.after(trainer.policy)

    if is_main:
        save_policy(trainer.policy, tokenizer, ctx.out_dir / "model", src)
        write_items(ctx.out_dir, before, after)
    accelerator.wait_for_everyone()
    report = eval_report(before, after, reward, history, reference.kind)
    metrics = {k: v for k, v in {
        **headline(report), "reward_before": report.get("reward_before"), "reward": report.get("reward"),
        "rm_score_before": report["rm_score_before"], "rm_score": report["rm_score"],
        "kl": report["kl"], "kl_max": report["kl_max"], "train_reward": report["train_reward"],
        "steps": len(history), "num_processes": accelerator.num_processes,
    }.items() if v is not None}
    card = ("Trained with PPO (llmpost.rl) on rewards "
            + ", ".join(f"{r['name']} (weight {r['weight']:g})" for r in report["rewards"])
            + ("; the process reward per step (dense)" if cfg.process_rewards == "dense" else "")
            + f"; KL penalty {cfg.kl.coef:g}" + (f" (adaptive, target {cfg.kl.target:g})" if cfg.kl.target else "")
            + f"; reference: {reference.kind}. Load it like any model: `llmpost eval --model {ctx.name}`.")
    return StageResult(metrics=metrics, eval=report, card=card)


def training_rewards(cfg: Config, reward):
    """(the trainer's sequence reward, its step reward or None) from the run's loaded `CombinedReward`.

    Held-out evaluation always scores with `reward` itself, a PRM aggregated, so dense and
    aggregated runs report the same figures.
    """
    if cfg.process_rewards != "dense":
        return reward, None
    from llmpost.rewards.process_reward import DenseProcessRewards

    dense = DenseProcessRewards(reward)
    return dense.sequence, dense.steps


def make_accelerator(cfg: Config, is_tiny: bool):
    """An Accelerator for this process: DDP under torchrun/accelerate launch, bf16 when asked or supported."""
    import torch
    from accelerate import Accelerator

    from llmpost.models.precision import use_bf16

    bf16 = use_bf16(cfg.bf16, is_tiny)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if bf16 else "no")


def max_prompt_length(cfg: Config) -> int:
    """Prompts are cut (from the left) to leave room for the longest response within max_length."""
    return cfg.max_length - cfg.rollout.max_new_tokens


def vllm_rollouts(cfg: Config, policy, tokenizer, accelerator):
    """Rollouts sampled by vLLM with this config's settings (`rl/vllm_rollout.py`)."""
    from llmpost.rl.vllm_rollout import VllmRollouts

    return VllmRollouts(policy, tokenizer, accelerator, cfg.rollout, mode=cfg.vllm_mode,
                        server_url=cfg.vllm_server_url, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                        max_prompt_length=max_prompt_length(cfg), max_num_seqs=cfg.batch_size,
                        trust_remote_code=cfg.trust_remote_code)


# --- evaluation ----------------------------------------------------------------------------


def eval_report(before, after, reward, history: list[dict], reference_kind: str) -> dict:
    """eval.json: the held-out figures before/after (`evaluation/report.py`), the reward model's score, the KL reached."""
    from llmpost.evaluation.report import eval_fields
    from llmpost.evaluation.stats import mean_or_none

    def rm_score(evaluation) -> float | None:
        """The mean of the reward models' (`rm:REF`) held-out means."""
        means = evaluation.rewards() if evaluation else {}
        return mean_or_none(v for name, v in means.items() if name.startswith("rm:"))

    tail = history[-max(1, len(history) // 10):]  # the last 10% of steps: where the policy ended up
    return eval_fields(before, after, stage={
        "rm_score_before": rm_score(before),
        "rm_score": rm_score(after),
        "kl": mean_or_none(h["kl"] for h in tail) if history else None,
        "kl_max": max(h["kl"] for h in history) if history else None,
        "train_reward": mean_or_none(h["reward_mean"] for h in tail) if history else None,
        "reference": reference_kind,
        "rewards": reward.describe(),
    })


# --- progress and metrics.jsonl ------------------------------------------------------------

SHOWN = ("reward_mean", "kl", "entropy", "approx_kl", "response_length")


class StepReporter:
    """metrics.jsonl (and so `report_to`'s trackers) every `logging_steps` PPO steps; the progress bar (main only)."""

    def __init__(self, ctx: StageContext, total: int, logging_steps: int, enabled: bool = True):
        from llmpost.reporting.progress import ProgressBar

        self.enabled, self.logging_steps, self.total = enabled, logging_steps, total
        self.log = ctx.metrics_log() if enabled else None
        self.bar = ProgressBar(ctx.console, "ppo", total) if enabled else None

    def __enter__(self) -> StepReporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def step(self, step: int, stats: dict[str, float]) -> None:
        from llmpost.reporting.progress import figures

        if not self.enabled:
            return
        if step % self.logging_steps == 0 or step == self.total:
            self.log.write(step, stats)
        self.bar.update(step, figures(stats, SHOWN))

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
