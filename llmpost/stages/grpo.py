"""`llmpost grpo`: Group Relative Policy Optimization on TRL's GRPOTrainer.

For each prompt GRPO samples a group of completions, scores them with the rewards,
and uses each reward minus its group's mean (divided by the group's spread) as the
advantage: no value model. Rewards come from `llmpost.rewards.registry`, the same
registry `ppo` and `eval` use; their weighted sum is the reward and each one's mean
is logged separately (`rewards/NAME/mean` in metrics.jsonl).

run(): resolve inputs -> build rewards -> load model -> evaluate before -> train ->
evaluate after -> save. The held-out evaluation reports exact match and the mean
reward of greedy answers, before and after, with intervals and the paired change
(`evaluation/report.py`; every answer in eval_items.jsonl).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llmpost.config.base import (
    EvalSettings,
    LearningRates,
    TrainConfig,
    learning_rate_field,
    qlora_vllm_problems,
)
from llmpost.rl.vllm_check import check_vllm
from llmpost.stages.context import StageContext, StageResult, stage_inputs
from llmpost.stages.rewarded import RewardedConfig

DEFAULT_DATA = "builtin:arith-prompts"
LOSS_TYPES = Literal["dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo"]


class Config(RewardedConfig):
    # RL moves a model further per step than SFT on the same rate, so these sit below the SFT
    # defaults. On the tiny model after SFT (exact match 0.74), 100 steps at 5e-4 or 1e-3
    # collapsed it (completions stopped ending; 0.14), 1e-4 held it (0.725).
    default_learning_rates: ClassVar[LearningRates] = LearningRates(tiny=1e-4, lora=2e-5, full=1e-6)
    learning_rate: float | None = learning_rate_field(default_learning_rates)
    tiny_eval_tokens: ClassVar[int] = 64  # as long as a training completion (max_completion_length)
    trainer_args_from_keys: ClassVar[dict[str, str]] = {
        **TrainConfig.trainer_args_from_keys,
        "num_generations": "num_generations", "beta": "beta", "epsilon": "epsilon", "num_iterations": "num_iterations",
        "max_completion_length": "max_completion_length", "temperature": "temperature", "loss_type": "loss_type",
        "scale_rewards": "scale_rewards", "reward_weights": "rewards", "use_vllm": "vllm", "vllm_mode": "vllm_mode",
    }
    data: str = Field(DEFAULT_DATA, description="prompts, with the columns the rewards read (answer, tests, ...)")
    rewards: list[str] = Field(
        ["exact_match"],
        description="rewards as NAME[=WEIGHT]: exact_match, math, format[:REGEX], length[:min=N,max=M], "
                    "code_exec, rm:REF, prm:REF[:agg=min|prod|last|mean], judge:SPEC, path/file.py:fn, module:fn",
    )
    system_prompt: str | None = Field(None, description="a system message put before every prompt, in training and evaluation")
    batch_size: int = Field(32, ge=1, description="completions per device per step (prompts per step = this / num_generations)")
    num_generations: int = Field(8, ge=2, description="completions sampled per prompt: the group rewards are compared within")
    beta: float = Field(0.0, ge=0, description="KL strength towards the starting model; 0 loads no reference model (faster)")
    epsilon: float = Field(0.2, gt=0, description="clip range of the policy ratio, as in PPO")
    num_iterations: int = Field(1, ge=1, description="optimisation passes over each batch of generations")
    max_completion_length: int = Field(64, ge=1, description="longest completion in tokens")
    forward_batch_size: int | None = Field(
        8, ge=1, description="completions per forward pass of the policy, sorted by length and each pass cut to its "
                             "longest (a step's batch in one pass ran 1.8x slower on a CPU); null: the whole batch at once")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the completions; higher explores more")
    loss_type: LOSS_TYPES = Field("dapo", description="how token losses are averaged (TRL loss_type); dapo has no length bias")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the group's (or batch's) reward std, or not at all (Dr. GRPO)"
    )
    vllm: bool = Field(False, description="generate with vLLM (needs `pip install vllm` and a CUDA GPU)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="vLLM in the training process (colocate) or a separate `trl vllm-serve` (server)"
    )
    eval: EvalSettings = Field(
        default_factory=EvalSettings,
        description="held-out evaluation settings (default data: the test split of a builtin:... prompt set)",
    )

    @model_validator(mode="after")
    def consistent(self) -> Config:
        problems = qlora_vllm_problems(self, self.vllm, self.vllm_mode)
        per_step = self.batch_size * self.grad_accum
        if per_step % self.num_generations:
            problems.append(f"batch_size x grad_accum ({per_step}) must be a multiple of num_generations "
                            f"({self.num_generations}): each step holds whole groups of completions")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def inputs(cfg: Config) -> dict[str, list[str]]:
    from llmpost.rewards.registry import reward_model_refs

    return stage_inputs(cfg, models=tuple(reward_model_refs(cfg.rewards)))


def run(cfg: Config, ctx: StageContext) -> StageResult:
    # Settings and rows are checked before TRL is imported (seconds): a mistake fails at once.
    check_vllm(cfg)
    src = ctx.model(cfg.model)
    train = prompt_rows(ctx, cfg.data, cfg.system_prompt)
    held_out_ref = cfg.held_out_data()
    held_out_rows = prompt_rows(ctx, held_out_ref, cfg.system_prompt)[: cfg.eval.max_samples] if held_out_ref else []

    from datasets import Dataset

    from llmpost.evaluation.report import headline, write_items
    from llmpost.models.save import save_model
    from llmpost.rewards.registry import CombinedReward
    from llmpost.stages.grpo_trainer import LlmpostGRPOTrainer
    from llmpost.stages.heldout import HeldOut
    from llmpost.stages.training import (
        intra_op_threads,
        load_trainable,
        quiet,
        report_callback,
        resume_checkpoint,
    )

    args = build_grpo_args(cfg, ctx, src.is_tiny)  # before loading: a bad `trainer:` key fails fast
    reward = CombinedReward(cfg.rewards, ctx.store)
    reward.check_rows(train, cfg.data)
    if held_out_rows:
        reward.check_rows(held_out_rows, held_out_ref)
    else:
        ctx.console.print("[yellow]no held-out prompts: set eval.data to report exact match and reward[/yellow]")

    tokenizer, model, peft_config = load_trainable(src, cfg)

    held_out = HeldOut.of(cfg, src, held_out_rows, tokenizer, reward)
    with intra_op_threads(1 if src.is_tiny else None):
        before = held_out.before(model)
        trainer = quiet(LlmpostGRPOTrainer(
            model=model, reward_funcs=reward.trl_functions(), args=args, train_dataset=Dataset.from_list(train),
            processing_class=tokenizer, peft_config=peft_config, callbacks=[report_callback(ctx, "grpo")],
            forward_batch_size=cfg.forward_batch_size,
        ))
        trainer.train(resume_from_checkpoint=resume_checkpoint(ctx))  # continues an interrupted run
        after = held_out.after(trainer.model)

    save_model(trainer.model, tokenizer, ctx.out_dir / "model", src)
    write_items(ctx.out_dir, before, after)
    report = eval_report(before, after, reward)
    last = last_logged(trainer.state.log_history)
    metrics = {k: v for k, v in {
        **headline(report), "reward_before": report.get("reward_before"), "reward": report.get("reward"),
        "train_reward": last.get("reward"), "steps": trainer.state.global_step,
    }.items() if v is not None}
    card = ("Trained with GRPO on rewards " + ", ".join(f"{r['name']} (weight {r['weight']:g})" for r in report["rewards"])
            + (f", system prompt {cfg.system_prompt!r}" if cfg.system_prompt else "") + ".")
    return StageResult(metrics=metrics, eval=report, card=card)


def build_grpo_args(cfg: Config, ctx: StageContext, is_tiny: bool):
    from trl import GRPOConfig

    from llmpost.rewards.registry import parse_reward_spec
    from llmpost.stages.trainer_args import build_args

    from_keys = dict(
        num_generations=cfg.num_generations, beta=cfg.beta, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards, reward_weights=[parse_reward_spec(s)[1] for s in cfg.rewards],
        use_vllm=cfg.vllm, vllm_mode=cfg.vllm_mode,
    )
    return build_args(GRPOConfig, cfg, ctx.work_dir, is_tiny=is_tiny, from_keys=from_keys, log_completions=False)


def prompt_rows(ctx: StageContext, ref: str, system_prompt: str | None) -> list[dict]:
    """Prompt rows in conversational form, numbered (reward errors name the row), with the system prompt."""
    from llmpost.data.formats import to_prompts

    rows = to_prompts(ctx.data(ref).rows, ref)
    for n, row in enumerate(rows, 1):
        row["row_number"] = n
        if system_prompt and row["prompt"][0]["role"] != "system":
            row["prompt"] = [{"role": "system", "content": system_prompt}, *row["prompt"]]
    return rows


def eval_report(before, after, reward) -> dict:
    """eval.json: the held-out figures before/after (`evaluation/report.py`) and the rewards used."""
    from llmpost.evaluation.report import eval_fields

    return eval_fields(before, after, stage={"rewards": reward.describe()})


def last_logged(history: list[dict]) -> dict:
    """The last training log entry that holds a reward (the final summary entry has none)."""
    return next((h for h in reversed(history) if "reward" in h), {})
