"""The memory planner: will a stage fit on a GPU of a given size, and which knob to turn if not.

    architecture.py   a model's shape (layers, hidden, vocab, ...) from a config.json,
                      an artifact, the HF cache, or the built-in size table
    sizes.py          the size table: common families, usable offline
    estimate.py       the memory model: weights, LoRA/QLoRA, gradients, optimizer
                      states, activations, LM head, generation KV cache
    stages.py         what each stage holds at once (policy, reference, reward
                      model, value head, rollouts) and the workload it runs
    report.py         fit / does not fit, the knobs that make it fit, rendering

Works offline and imports no torch: `llmpost plan` answers in a second.
"""
