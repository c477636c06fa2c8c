"""Running a stage on more than one process, on engines llmpost does not reimplement.

    settings.py   `LaunchSettings`: launcher, process count, DeepSpeed/FSDP (the
                  `--launcher ...` flags and a recipe stage's `launch:` block)
    relaunch.py   `launch_stage()`: re-run one stage under torchrun or
                  `accelerate launch`; the launched processes run the ordinary CLI
    engines.py    DeepSpeed ZeRO configs, FSDP settings, and the check that
                  DeepSpeed is importable

Which process is which (`llmpost.ranks`) sits at the bottom of the package, because
stages ask it too; how a non-main rank trains without writing is in `pipeline/execute.py`.
Nothing here imports torch at module level.
"""
