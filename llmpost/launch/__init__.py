"""Running llmpost on more than one process, on engines it does not reimplement.

    settings.py   `LaunchSettings`: launcher, process count, DeepSpeed/FSDP (the
                  `--launcher ...` flags and a recipe stage's `launch:` block)
    relaunch.py   `launch_stage()`: re-run one stage under torchrun or
                  `accelerate launch`; the launched processes run the ordinary CLI
    ranks.py      which process this is; non-main ranks train but never write
                  an artifact (only rank 0 touches the store)
    engines.py    DeepSpeed ZeRO configs, FSDP settings, and the checks that
                  DeepSpeed / vLLM are importable (`require_vllm()`)

Nothing here imports torch at module level.
"""
