"""The memory model: bytes a training step holds on one device, part by part.

Every term is a formula over the model's shape (architecture.py) and the
workload, following what the pinned stack (torch, transformers, TRL, PEFT,
bitsandbytes) allocates:

weights       full/LoRA: every parameter in the checkpoint's dtype (from_pretrained
              loads dtype="auto"); QLoRA: the blocks' linear layers as 4-bit NF4 with
              double quantisation (0.5 B/param + one 8-bit absmax per 64 weights + one
              fp32 scale per 256 absmax), embeddings and norms in the checkpoint's dtype
adapter       LoRA A/B: r * (d_in + d_out) per adapted linear; fp32 (PEFT upcasts the
              adapter), bf16 under QLoRA (TRL casts it, as the QLoRA paper does)
gradients     one per trainable parameter, in its dtype
optimizer     AdamW: two states per trainable parameter in its dtype; 8-bit AdamW
              (`trainer.optim=adamw_bnb_8bit`/`paged_adamw_8bit`): 2 bytes; SGD: none
activations   what autograd saves per token and decoder block (measured against
              saved-tensor hooks in the unit tests): per RMSNorm an fp32 copy of its
              input plus its output; q, k, v (k/v repeated to all heads, as HF's sdpa
              path does), attention output and o_proj input; gate, act(gate), up and
              their product in the MLP; LoRA's r-wide intermediate. With gradient
              checkpointing, only each block's input plus one block recomputed.
              Attention is sdpa/flash: no seq^2 term.
LM head       TRL 1.x trainers use a fused, tiled LM head: a [min(N,4096), min(V,32768)]
              tile instead of [N, V] logits (plus, when the head trains, an fp32
              gradient of its weight). llmpost's PPO builds the [N, V] logits of the
              response positions and their gradient (a bytes each) and works in float32
              on blocks of 64 MiB (`rl/logprobs.py`, two at a time, plus the forward's).
working set   one block's worth of activation gradients while backpropagating

Sequence length is taken as `max_length` for every example (the worst case a
batch can reach). Figures are bytes; report.py turns them into GiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from llmpost.memplan.architecture import Architecture

# 4-bit NF4 with double quantisation: 4 bits + 8-bit absmax per 64-block + fp32 per 256 absmax.
NF4_DOUBLE_QUANT_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
FUSED_HEAD_TOKENS, FUSED_HEAD_VOCAB = 4096, 32768  # trl.kernels.chunked_logprob tile shape
LOGPROB_BLOCK_BYTES = 64 * 2**20  # rl/logprobs.py CHUNK_BYTES: PPO's float32 working block


@dataclass(frozen=True)
class Workload:
    """What one training step of one model does on one device."""

    method: Literal["full", "lora", "qlora"] = "full"
    lora_r: int = 16
    lora_targets: list[str] | str = "all-linear"
    sequences: int = 8  # sequences per forward pass (DPO/RM: chosen + rejected = 2 x batch)
    seq_len: int = 512
    gradient_checkpointing: bool = False
    optim: str = "adamw_torch_fused"
    bf16: bool = True  # bf16 compute (autocast or bf16 weights)
    lm_head: Literal["fused", "full", "none"] = "fused"  # none: a reward/value head instead

    @property
    def tokens(self) -> int:
        return self.sequences * self.seq_len


@dataclass
class Part:
    """One line of an estimate: what, how many bytes, how it was computed."""

    name: str
    bytes: float
    note: str = ""


@dataclass
class Estimate:
    """The parts resident for the whole step, and the transient ones at the step's peak."""

    resident: list[Part] = field(default_factory=list)
    transient: list[Part] = field(default_factory=list)

    @property
    def parts(self) -> list[Part]:
        return self.resident + self.transient

    @property
    def total(self) -> float:
        return sum(p.bytes for p in self.parts)


def compute_bytes(arch: Architecture, work: Workload) -> int:
    """Bytes per activation element: 2 under bf16, else the checkpoint's own width."""
    return 2 if work.bf16 else arch.weight_bytes


def weights(arch: Architecture, method: str, *, kind: str = "causal") -> Part:
    """The model's own weights, quantised under QLoRA. `kind` 'seqcls' swaps the LM head for a score head."""
    w = arch.weight_bytes
    head = 0 if arch.tied else arch.vocab * arch.hidden
    if kind == "seqcls":
        head = arch.hidden  # score: hidden -> 1
    embed = arch.vocab * arch.hidden
    norms = arch.layers * arch.block_other_params + arch.hidden
    linear = arch.layers * arch.block_linear_params
    if method == "qlora":
        total = linear * NF4_DOUBLE_QUANT_BYTES + (embed + head + norms) * w
        note = f"{linear / 1e6:.0f}M linear params in 4-bit NF4 (double quant), {embed + head + norms:,} in {arch.dtype}"
    else:
        total = (linear + embed + head + norms) * w
        note = f"{(linear + embed + head + norms) / 1e6:.1f}M params x {w} B ({arch.dtype})"
    return Part("weights", total, note)


def trainable_params(arch: Architecture, work: Workload) -> tuple[int, int]:
    """(trainable parameter count, bytes per trainable parameter)."""
    if work.method == "full":
        return arch.params, arch.weight_bytes
    return arch.lora_params(work.lora_r, work.lora_targets), (2 if work.method == "qlora" else 4)


def optimizer_bytes_per_param(optim: str, param_bytes: int) -> float:
    """Optimizer state per trainable parameter for transformers' `optim` names."""
    name = optim.lower()
    if "8bit" in name:
        return 2.0
    if "sgd" in name or "adafactor" in name:
        return 0.0  # no momentum by default / factored second moment (negligible)
    if "lion" in name:
        return float(param_bytes)
    return 2.0 * param_bytes  # Adam/AdamW: exp_avg + exp_avg_sq in the parameter's dtype


EAGER_ATTENTION = {"gemma2"}  # no sdpa support in transformers: attention probabilities are kept (seq^2)


def block_activation_bytes_per_token(arch: Architecture, work: Workload) -> float:
    """Bytes autograd keeps per token for one decoder block (no checkpointing)."""
    a = compute_bytes(arch, work)
    h, i = arch.hidden, arch.intermediate
    trains_norms = work.method == "full"  # a trainable norm weight also keeps the pre-weight output
    norms = arch.norms_per_layer * (4 * h + (2 if trains_norms else 1) * a * h)
    attention = 4 * a * arch.q_dim + 4 * arch.heads  # q, k, v (k/v repeated to all heads), output; fp32 logsumexp
    if arch.model_type in EAGER_ATTENTION:
        attention += arch.heads * work.seq_len * (2 * a + 4)  # scores, fp32 softmax, probabilities
    if arch.model_type == "qwen3":  # q/k RMSNorms
        attention += (4 + (a if trains_norms else 0)) * (arch.q_dim + arch.kv_dim)
    if arch.model_type == "phi3":  # the fused qkv output stays alive under its views
        attention += a * (arch.q_dim + 2 * arch.kv_dim)
    mlp = 4 * a * i  # gate, act(gate), up, act(gate) * up
    lora = 0
    if work.method != "full":
        adapted = sum(1 for lin in arch.block_linears()
                      if work.lora_targets == "all-linear" or lin.name in work.lora_targets)
        lora = a * work.lora_r * adapted  # each adapter's r-wide intermediate
    return norms + attention + mlp + lora


def activations(arch: Architecture, work: Workload) -> list[Part]:
    """Saved activations for the backward pass, and one block's working set while it runs."""
    a = compute_bytes(arch, work)
    per_token = block_activation_bytes_per_token(arch, work)
    per_block = per_token * work.tokens
    # final norm (fp32 input copy, pre-weight output when it trains) + the LM head's copy of its input
    final = (4 * arch.hidden + (2 if work.method == "full" else 1) * a * arch.hidden) * work.tokens
    mask = work.sequences * work.seq_len ** 2 * a  # the padded batch's 4-D attention mask, shared by all blocks
    if work.gradient_checkpointing:
        saved = arch.layers * a * arch.hidden * work.tokens + final + mask
        note = f"block inputs x {arch.layers} blocks x {work.tokens:,} tokens (gradient checkpointing)"
        working = 2 * per_block  # the block being recomputed, and its gradients
    else:
        saved = arch.layers * per_block + final + mask
        note = f"{per_token / 1024:.1f} KiB/token/block x {arch.layers} blocks x {work.tokens:,} tokens"
        working = per_block
    return [Part("activations", saved, note),
            Part("backward working set", working, "one block's activations/gradients while backpropagating")]


def lm_head(arch: Architecture, work: Workload) -> Part:
    """The LM head's transient memory at the loss."""
    a = compute_bytes(arch, work)
    n = work.tokens
    if work.lm_head == "none":
        return Part("score head", n * 4 * 2, "one score per token")
    if work.lm_head == "full":
        return Part("logits", n * arch.vocab * 2 * a + 3 * LOGPROB_BLOCK_BYTES,
                    f"[{n:,} x {arch.vocab:,}] logits and their gradient, float32 blocks")
    tile = min(n, FUSED_HEAD_TOKENS) * min(arch.vocab, FUSED_HEAD_VOCAB) * a
    grad_hidden = n * arch.hidden * 4
    head_trains = work.method == "full"
    grad_weight = arch.vocab * arch.hidden * 4 if head_trains else 0
    note = "fused LM head tile + fp32 hidden gradient" + (" + fp32 head-weight gradient" if head_trains else "")
    return Part("LM head (fused)", tile + grad_hidden + grad_weight, note)


def train_step(arch: Architecture, work: Workload, *, kind: str = "causal", role: str = "policy") -> Estimate:
    """Peak memory of one optimizer step of one trained model: resident state + the backward peak."""
    est = Estimate()
    base = weights(arch, work.method, kind=kind)
    base.name = f"{role} weights"
    est.resident.append(base)
    n_train, train_b = trainable_params(arch, work)
    if work.method != "full":
        est.resident.append(Part(f"{role} LoRA adapter", n_train * train_b,
                                 f"{n_train / 1e6:.2f}M params (r={work.lora_r}) x {train_b} B"))
    opt = optimizer_bytes_per_param(work.optim, train_b)
    est.resident.append(Part("optimizer states", n_train * opt, f"{work.optim}: {opt:g} B x {n_train / 1e6:.2f}M trainable"))
    grads = Part("gradients", n_train * train_b, f"{n_train / 1e6:.2f}M trainable x {train_b} B")
    acts = activations(arch, work)
    head = lm_head(arch, replace(work, lm_head="none") if kind == "seqcls" else work)
    # The backward peak is either early (all activations saved, the head's buffers live) or
    # late (every gradient written); for LoRA the gradients are tiny and the early peak wins.
    early = [*acts, head] + ([grads] if work.method != "full" else [])
    late = [grads, acts[1]]
    est.transient += early if sum(p.bytes for p in early) >= sum(p.bytes for p in late) else late
    return est


def frozen_model(arch: Architecture, method: str, role: str, *, kind: str = "causal") -> Part:
    """A model held only for forward passes under no_grad (reference, reward model)."""
    part = weights(arch, method, kind=kind)
    return Part(f"{role} weights", part.bytes, part.note + " (frozen, no gradients)")


def kv_bytes_per_token(arch: Architecture, bf16: bool) -> int:
    """A key and a value per layer, at the precision generation runs in."""
    return 2 * arch.layers * arch.kv_dim * (2 if bf16 else arch.weight_bytes)


def kv_cache(arch: Architecture, sequences: int, total_len: int, bf16: bool) -> Part:
    """Generation's key/value cache plus the last position's fp32 logits."""
    cache = sequences * total_len * kv_bytes_per_token(arch, bf16)
    logits = sequences * arch.vocab * 4 * 2
    return Part("generation KV cache", cache + logits,
                f"{sequences} sequences x {total_len} tokens x {arch.layers} blocks x 2 x {arch.kv_dim}")
