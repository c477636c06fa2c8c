"""One PPO step, readable as the textbook algorithm (Ziegler et al. 2019; Ouyang et al. 2022).

    1. rollout   sample one response per prompt from the current policy (transformers or vLLM)
    2. score     the sequence reward of each response (reward model, verifier, ...); a response
                 no reward applies to (NaN) is counted and left out of the update
    3. evaluate  log-probs and values under the policy, log-probs under the reference (the layers
                 below a top-layer adapter computed once, and replayed here and in 6: `trunk.py`;
                 every pass here and in 6 skips the columns its micro-batch only pads: `columns.py`)
    4. rewards   -beta * KL at every response token, plus the sequence reward at the last
                 (and, with a step reward, each step's where the step ends: `dense.py`)
    5. GAE       advantages and value targets over response tokens, advantages whitened
    6. update    several epochs of clipped policy + value loss over shuffled minibatches,
                 each minibatch split into `grad_accum` passes; stop early when the
                 policy has moved too far (approx-KL)
    7. control   adapt beta toward the target KL (when one is set), from the KL of every process

Runs on one device or under `accelerate launch` / `torchrun` (DDP): each process
samples its own prompts; gradients, statistics, stop decisions and beta are shared.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from llmpost.evaluation.generation import chat_prompt
from llmpost.evaluation.heldout import RewardWithParts
from llmpost.models.trunk import FrozenTrunk
from llmpost.rl.checkpoint import load_checkpoint, save_checkpoint
from llmpost.rl.columns import alike, tight
from llmpost.rl.dense import StepRewardFn, placed_rewards
from llmpost.rl.gae import gae_advantages
from llmpost.rl.kl import kl_controller, kl_estimate, kl_penalized_rewards
from llmpost.rl.logprobs import logprobs_and_entropy
from llmpost.rl.losses import policy_loss, value_loss
from llmpost.rl.masked import masked_mean, whiten
from llmpost.rl.policy import Reference, causal_lm
from llmpost.rl.rollout import Rollout, sample_rollout
from llmpost.rl.scaling import RunningMoments, scale_scores, scale_step_rewards
from llmpost.rl.settings import KLSettings, PPOSettings, RolloutSettings
from llmpost.rl.value_head import PolicyWithValue

# (chat-formatted prompt texts) -> one sampled response each, e.g. `VllmRollouts`; default: `sample_rollout`
RolloutFn = Callable[[list[str]], Rollout]


class PromptSampler:
    """Endless shuffled batches of prompt indices; each process takes its own slice of a global batch."""

    def __init__(self, n: int, batch_size: int, num_processes: int, process_index: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.num_processes, self.process_index = num_processes, process_index
        self.generator = torch.Generator().manual_seed(seed)  # the same on every process
        self.order: list[int] = []

    def next(self) -> list[int]:
        global_batch = self.batch_size * self.num_processes
        if len(self.order) < global_batch:  # start a new pass (a short remainder is dropped)
            self.order = torch.randperm(self.n, generator=self.generator).tolist()
            while len(self.order) < global_batch:  # fewer prompts than one global batch
                self.order += torch.randperm(self.n, generator=self.generator).tolist()
        batch, self.order = self.order[:global_batch], self.order[global_batch:]
        start = self.process_index * self.batch_size
        return batch[start:start + self.batch_size]


class PPOTrainer:
    """Actor-critic PPO on a causal LM `policy`, held near `reference`, rewarded by `reward_fn`.

    `prompts` are rows `{"prompt": [messages], ...}` (other columns reach `reward_fn`).
    `batch_size` prompts per process per step, one response each; `steps` PPO steps
    (or, when <= 0, enough for `epochs` passes over the prompts). `rollouts` samples the
    responses; by default the policy itself does (`sample_rollout`).
    `step_reward_fn` adds rewards inside responses, each on the token that ends a step
    (`dense.py`): a response's whole reward is then its sequence reward plus those.
    """

    def __init__(self, policy, reference: Reference, tokenizer, reward_fn: RewardWithParts, prompts: list[dict], *,
                 rollout: RolloutSettings, kl: KLSettings, ppo: PPOSettings, batch_size: int, grad_accum: int = 1,
                 learning_rate: float = 1e-5, steps: int = -1, epochs: float = 1.0, warmup_ratio: float = 0.0,
                 max_prompt_length: int | None = None, seed: int = 0, accelerator=None,
                 rollouts: RolloutFn | None = None, step_reward_fn: StepRewardFn | None = None):
        from accelerate import Accelerator

        check_batch_sizes(batch_size, ppo.mini_batch_size, grad_accum)
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.tokenizer, self.reward_fn, self.reference = tokenizer, reward_fn, reference
        self.step_reward_fn = step_reward_fn
        self.rollout_cfg, self.kl_cfg, self.ppo = rollout, kl, ppo
        self.batch_size, self.grad_accum = batch_size, grad_accum
        self.max_prompt_length = max_prompt_length
        self.rollouts = rollouts or self.sample
        self.prompts = prompts
        n_procs, rank = self.accelerator.num_processes, self.accelerator.process_index
        self.steps = steps if steps > 0 else max(1, math.ceil(epochs * len(prompts) / (batch_size * n_procs)))
        self.sampler = PromptSampler(len(prompts), batch_size, n_procs, rank, seed)
        self.seed = seed
        self.shuffle = torch.Generator()

        device = self.accelerator.device
        model = PolicyWithValue(policy)
        if not getattr(causal_lm(policy), "is_loaded_in_4bit", False):  # a 4-bit base is placed at load time
            model.to(device)
        if reference.kind == "frozen-copy":
            reference.model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=learning_rate)
        updates = self.steps * ppo.epochs * (batch_size // ppo.mini_batch_size)
        warmup = max(1, int(warmup_ratio * updates))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: min(1.0, (u + 1) / warmup))
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer, device_placement=[False, False])
        self.scheduler = scheduler
        self.kl_ctl = kl_controller(kl.coef, kl.target, kl.horizon)
        self.trunk = FrozenTrunk.of(causal_lm(policy)) if ppo.reuse_frozen_layers else FrozenTrunk(None, 0)
        self.moments = RunningMoments() if ppo.reward_normalize else None

    @property
    def policy(self):
        """The policy causal LM being trained (outside any DDP wrapper)."""
        return self.accelerator.unwrap_model(self.model).policy

    def train(self, on_step: Callable[[int, dict], None] | None = None, checkpoint_dir: Path | None = None,
              checkpoint_every: int = 0) -> list[dict]:
        """Run every step; `on_step(step, stats)` after each. Returns every step's stats.

        With `checkpoint_dir`, a checkpoint found there is resumed from (its steps are
        replayed to `on_step`) and a new one is written every `checkpoint_every` steps.
        """
        done, history = load_checkpoint(self, checkpoint_dir)
        for step, stats in enumerate(history, 1):
            if on_step is not None:
                on_step(step, stats)
        for step in range(done + 1, self.steps + 1):
            self.seed_step(step)
            stats = self.step([self.prompts[i] for i in self.sampler.next()])
            history.append(stats)
            if on_step is not None:
                on_step(step, stats)
            if checkpoint_dir is not None and checkpoint_every and step % checkpoint_every == 0 and step < self.steps:
                if self.accelerator.is_main_process:
                    save_checkpoint(self, checkpoint_dir, step, history)
                self.accelerator.wait_for_everyone()
        return history

    def seed_step(self, step: int) -> None:
        """Sampling and minibatch order of `step` depend only on (seed, process, step): exact resumes."""
        rank = self.accelerator.process_index
        torch.manual_seed(self.seed + 1_000_003 * rank + step)
        self.shuffle.manual_seed(self.seed + 7919 * rank + step)

    def step(self, rows: list[dict]) -> dict[str, float]:
        """One PPO step on prompt `rows`; returns its statistics (averaged over processes)."""
        t0 = time.perf_counter()
        rollout = self.rollouts([chat_prompt(self.tokenizer, r["prompt"]) for r in rows])
        t1 = time.perf_counter()
        raw_scores, parts = self.score(rows, rollout)
        in_response, step_parts = self.score_steps(rows, rollout)
        parts = {**parts, **step_parts}
        all_scores = self.accelerator.gather(raw_scores + in_response.sum(dim=1))  # each response's whole reward
        check_some_rewarded(all_scores)
        t2 = time.perf_counter()
        batch, exp_stats = self.experience(rollout, raw_scores, in_response)
        update_stats = self.optimise(batch)
        t3 = time.perf_counter()

        local = {
            **exp_stats, **update_stats, **{f"reward/{name}": mean for name, mean in parts.items()},
            "response_length": rollout.response_lengths.float().mean().item(),
            "eos_rate": eos_rate(rollout, self.tokenizer.eos_token_id),
        }
        stats = self.mean_over_processes(local)
        # beta follows the KL of every process's responses: one beta, the same on every process
        # (and so in the checkpoint, which the main process writes).
        self.kl_ctl.update(stats["kl"], self.batch_size * self.accelerator.num_processes)
        self.check_same_on_every_process("beta", self.kl_ctl.value)
        rewarded = all_scores[~all_scores.isnan()]
        stats.update({
            "reward_mean": rewarded.mean().item(), "reward_std": rewarded.std().item() if rewarded.numel() > 1 else 0.0,
            "reward_nan_count": float(all_scores.numel() - rewarded.numel()),
            "beta": self.kl_ctl.value, "learning_rate": self.scheduler.get_last_lr()[0],
            "time_rollout": t1 - t0, "time_score": t2 - t1, "time_train": t3 - t2, "time_step": t3 - t0,
        })
        return stats

    # -- 1. rollout ------------------------------------------------------------

    def sample(self, prompt_texts: list[str]) -> Rollout:
        """The default rollouts: one response per prompt, sampled by the policy itself."""
        return sample_rollout(self.policy, self.tokenizer, prompt_texts, temperature=self.rollout_cfg.temperature,
                              top_p=self.rollout_cfg.top_p, max_new_tokens=self.rollout_cfg.max_new_tokens,
                              max_prompt_length=self.max_prompt_length)

    # -- 2. score --------------------------------------------------------------

    def score(self, rows: list[dict], rollout: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        """Raw sequence rewards `[B]`, NaN where no reward applied, and the batch mean of each reward part."""
        totals, parts = self.reward_fn([r["prompt"] for r in rows], rollout.completions, rows)
        scores = torch.tensor(totals, dtype=torch.float32, device=self.accelerator.device)
        return scores, {name: nanmean(values) for name, values in parts.items()}

    def score_steps(self, rows: list[dict], rollout: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        """Raw rewards inside the responses `[B, R]`, each on the token ending its step (all 0 without a
        `step_reward_fn`), and the batch mean of each part it reports."""
        device = self.accelerator.device
        if self.step_reward_fn is None:
            return torch.zeros(rollout.response_ids.shape, dtype=torch.float32, device=device), {}
        placed, parts = self.step_reward_fn([r["prompt"] for r in rows], rollout.completions, rows)
        rewards = placed_rewards(self.tokenizer, rollout.response_ids, rollout.response_mask, placed)
        return rewards.to(device), {name: nanmean(values) for name, values in parts.items()}

    # -- 3-5. evaluate, rewards, GAE --------------------------------------------

    @torch.no_grad()
    def experience(self, rollout: Rollout, raw_scores: torch.Tensor,
                   in_response: torch.Tensor | None = None) -> tuple[dict, dict[str, float]]:
        """The rollout as tensors for the update: old log-probs, values, advantages, returns.

        `raw_scores` land on each response's last token, `in_response` (`score_steps`) where they are.

        A response whose score is NaN (no reward applied to it) is left out of the update: its
        tokens are masked out of the rewards, advantages, whitening and losses. Were it scored
        0 instead, it would be pushed up or down by where 0 sits among the other rewards.
        """
        device = self.accelerator.device
        sampled = rollout.response_mask.to(device).float()
        if in_response is None:
            in_response = torch.zeros_like(sampled)
        rewarded = ~raw_scores.isnan()
        batch = {
            "input_ids": rollout.input_ids.to(device), "attention_mask": rollout.attention_mask.to(device),
            "position_ids": rollout.position_ids.to(device), "response_ids": rollout.response_ids.to(device),
            "response_mask": sampled * rewarded.unsqueeze(1),
        }
        mask = batch["response_mask"]
        # Micro-batches of rows alike in length, each pass cut to its micro-batch's own columns (`columns.py`).
        micro_batches = alike(batch["attention_mask"], sampled.shape[1], self.micro_batch_size)
        batch["old_logprobs"], batch["old_values"], entropy, trunk = self.first_pass(batch, micro_batches)
        if trunk is not None:
            batch["trunk"] = trunk
        ref_logprobs = self.reference_pass(batch, micro_batches)

        if self.moments is not None:  # of each response's whole reward
            all_scores = self.accelerator.gather(raw_scores + in_response.sum(dim=1))
            self.moments.update(all_scores[~all_scores.isnan()])
        # The 0 in place of NaN never reaches the update (those rows are masked out); it only keeps NaN
        # out of the arithmetic, where NaN * 0 would still be NaN.
        scores = scale_scores(raw_scores.nan_to_num(0.0), self.moments, self.ppo.reward_clip)
        # The KL of every sampled response, rewarded or not: it measures the policy, not the reward.
        kl = kl_estimate(batch["old_logprobs"], ref_logprobs, self.kl_cfg.estimator) * sampled
        rewards = kl_penalized_rewards(scores, kl, mask, self.kl_ctl.value)
        rewards = rewards + scale_step_rewards(in_response, self.moments) * mask
        advantages, returns = gae_advantages(rewards, batch["old_values"] * mask, mask, self.ppo.gamma, self.ppo.lam)
        if self.ppo.whiten_advantages:
            advantages = whiten(advantages, mask)
        batch["advantages"], batch["returns"] = advantages, returns
        seq_kl = kl.sum(dim=1)
        stats = {
            "kl": seq_kl.mean().item(),
            "kl_penalty": (-self.kl_ctl.value * seq_kl).mean().item(),
            "entropy": masked_mean(entropy, sampled).item(),
            "score_scaled_mean": masked_mean(scores, rewarded.float()).item(),
            "value_mean": masked_mean(batch["old_values"], mask).item(),
            "return_mean": masked_mean(returns, mask).item(),
        }
        return batch, stats

    def first_pass(self, batch: dict, micro_batches: list[torch.Tensor]):
        """(log-probs, values, entropy) `[B, R]` under the policy that sampled, and the frozen trunk's output
        `[B, T, H]` for the later passes to replay (None when nothing is replayed).

        Each result goes back to its row's place; the columns a micro-batch did not keep hold 0.
        """
        temperature = self.rollout_cfg.temperature
        logprobs, values, entropy = (torch.zeros(batch["response_ids"].shape, device=self.accelerator.device)
                                     for _ in range(3))
        trunk, replayable = None, self.trunk.enabled  # replayable: every micro-batch captured a tensor
        for idx in micro_batches:
            micro, cols = tight({k: v[idx] for k, v in batch.items()})
            with self.trunk.capture() as captured:
                logits, micro_values = self.forward(micro)
            if not self.trunk.verified:
                self.trunk.verify(logits, self.forward({**micro, "trunk": captured.hidden})[0])
            micro_logprobs, micro_entropy = logprobs_and_entropy(logits, micro["response_ids"], temperature, entropy=True)
            logprobs[idx, :cols.response] = micro_logprobs
            values[idx, :cols.response] = micro_values.float()
            entropy[idx, :cols.response] = micro_entropy
            replayable = replayable and captured.hidden is not None
            if replayable:
                if trunk is None:
                    trunk = captured.hidden.new_zeros((*batch["input_ids"].shape, captured.hidden.shape[-1]))
                trunk[idx, cols.start:cols.stop] = captured.hidden
        # verify may have turned the replay off after the first micro-batch
        return logprobs, values, entropy, trunk if replayable and self.trunk.enabled else None

    def reference_pass(self, batch: dict, micro_batches: list[torch.Tensor]) -> torch.Tensor:
        """The reference's log-probs `[B, R]` of the sampled responses (0 in the columns a micro-batch did not keep)."""
        logprobs = torch.zeros(batch["response_ids"].shape, device=self.accelerator.device)
        with self.accelerator.autocast():
            for idx in micro_batches:
                micro, cols = tight({k: v[idx] for k, v in batch.items()})
                logprobs[idx, :cols.response] = self.reference_logprobs(micro, self.rollout_cfg.temperature)
        return logprobs

    def forward(self, micro: dict, *, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's logits and values at the response positions of `micro` (the frozen layers replayed
        when it holds their output); `train`: through the DDP wrapper, for the update."""
        model = self.model if train else self.accelerator.unwrap_model(self.model)
        with self.trunk.replay(micro.get("trunk")):
            return model(micro["input_ids"], micro["attention_mask"], micro["position_ids"],
                         micro["response_ids"].shape[1])

    def reference_logprobs(self, micro: dict, temperature: float) -> torch.Tensor:
        """The reference's log-probs of `micro`'s responses; it shares the policy's frozen layers unless a copy."""
        shared = self.reference.kind != "frozen-copy"
        with self.trunk.replay(micro.get("trunk") if shared else None):
            return self.reference.logprobs(micro, temperature)

    # -- 6. update ---------------------------------------------------------------

    @property
    def micro_batch_size(self) -> int:
        return self.ppo.mini_batch_size // self.grad_accum

    def optimise(self, batch: dict) -> dict[str, float]:
        """`ppo.epochs` passes of minibatch updates; stops early when approx-KL passes `ppo.target_kl`.

        Each minibatch's approx-KL measures how far the updates before it moved the policy from
        the one that sampled; `approx_kl_max` is the largest of them, the figure `target_kl` is
        compared with (the mean, `approx_kl`, understates it: the first minibatch always reads 0).
        """
        sums: dict[str, float] = {}
        updates, stopped, approx_kl_max = 0, False, 0.0
        for _epoch in range(self.ppo.epochs):
            order = torch.randperm(self.batch_size, generator=self.shuffle).to(self.accelerator.device)
            for idx in order.split(self.ppo.mini_batch_size):
                stats = self.update({k: v[idx] for k, v in batch.items()})
                stats = self.mean_over_processes(stats)  # every process takes the same stop decision
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                updates += 1
                approx_kl_max = max(approx_kl_max, stats["approx_kl"])
                if self.ppo.target_kl is not None and stats["approx_kl"] > self.ppo.target_kl:
                    stopped = True
                    break
            if stopped:
                break
        out = {key: value / updates for key, value in sums.items()}
        out.update({"ppo_updates": float(updates), "early_stopped": float(stopped), "approx_kl_max": approx_kl_max})
        return out

    def update(self, minibatch: dict) -> dict[str, float]:
        """One optimizer step on a minibatch, in `grad_accum` forward/backward passes."""
        micro_batches = torch.arange(len(minibatch["response_mask"])).split(self.micro_batch_size)
        totals: dict[str, float] = {}
        for i, idx in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            micro, _ = tight({k: v[idx] for k, v in minibatch.items()})
            with nullcontext() if last else self.accelerator.no_sync(self.model):
                loss, stats = self.loss(micro)
                self.accelerator.backward(loss / len(micro_batches))
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value.item() / len(micro_batches)
        if self.ppo.max_grad_norm is not None:
            norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.ppo.max_grad_norm)
            totals["grad_norm"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return totals

    def loss(self, micro: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's loss on a micro-batch: clipped policy loss + vf_coef * clipped value loss - entropy bonus."""
        mask = micro["response_mask"]
        logits, values = self.forward(micro, train=True)
        logprobs, entropy = logprobs_and_entropy(logits, micro["response_ids"], self.rollout_cfg.temperature,
                                                 entropy=self.ppo.entropy_coef > 0)
        pg_loss, pg_stats = policy_loss(logprobs, micro["old_logprobs"], micro["advantages"], mask,
                                        self.ppo.clip_range)
        vf_loss, vf_stats = value_loss(values.float(), micro["old_values"], micro["returns"], mask,
                                       self.ppo.clip_range_value)
        loss = pg_loss + self.ppo.vf_coef * vf_loss
        if self.ppo.entropy_coef > 0:
            loss = loss - self.ppo.entropy_coef * masked_mean(entropy, mask)
        stats = {"policy_loss": pg_loss.detach(), "value_loss": vf_loss.detach(), **pg_stats, **vf_stats}
        return loss, stats

    def check_same_on_every_process(self, name: str, value: float) -> None:
        """Fail loudly when state that every process must share (beta) has drifted apart between them."""
        if self.accelerator.num_processes == 1:
            return
        values = self.accelerator.gather(torch.tensor([value], dtype=torch.float64, device=self.accelerator.device))
        if not all(math.isclose(v, value, rel_tol=1e-9) for v in values.tolist()):
            raise RuntimeError(f"{name} differs between processes: {values.tolist()}")

    def mean_over_processes(self, stats: dict[str, float]) -> dict[str, float]:
        """Each statistic averaged over processes (the identity on one process)."""
        if self.accelerator.num_processes == 1:
            return dict(stats)
        keys = sorted(stats)
        values = torch.tensor([float(stats[k]) for k in keys], device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(keys, values.tolist(), strict=True))


def check_some_rewarded(scores: torch.Tensor) -> None:
    """Fail when no response of a step (on any process) has a reward: PPO would have nothing to learn from.

    Some NaN rewards are expected (a reward that does not apply to a row); all of them, in a
    whole batch, is almost always rewards that do not fit the data. Every process sees the same
    gathered scores, so all of them stop together.
    """
    from llmpost.errors import LlmpostError

    if scores.numel() and scores.isnan().all():
        raise LlmpostError(f"no reward applied to any of the {scores.numel()} responses of a PPO step "
                           "(every reward returned None or NaN): there is nothing to learn from",
                           hint="check that the data has what the rewards read (e.g. an `answer` column for "
                                "exact_match) and that a user reward returns a number where it applies")


def nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def eos_rate(rollout: Rollout, eos_token_id: int) -> float:
    """Share of responses that ended with EOS rather than running out of tokens."""
    ended = (rollout.response_ids == eos_token_id) & rollout.response_mask.bool()
    return ended.any(dim=1).float().mean().item()


def check_batch_sizes(batch_size: int, mini_batch_size: int, grad_accum: int) -> None:
    """batch_size must split into minibatches, and each minibatch into grad_accum passes."""
    from llmpost.errors import ConfigError

    problems = []
    if batch_size % mini_batch_size:
        problems.append(f"batch_size ({batch_size}) must be a multiple of ppo.mini_batch_size ({mini_batch_size})")
    if mini_batch_size % grad_accum:
        problems.append(f"ppo.mini_batch_size ({mini_batch_size}) must be a multiple of grad_accum ({grad_accum})")
    if problems:
        raise ConfigError(problems, hint="e.g. batch_size=16, ppo.mini_batch_size=8, grad_accum=1 or 2")
