"""`llmpost doctor`: what this machine can run."""

from __future__ import annotations

import os

from rich.table import Table

from llmpost.artifacts.manifest import package_versions


def doctor_report() -> Table:
    table = Table(title="llmpost doctor", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for name, version in package_versions().items():
        table.add_row(name, version or "[red]not installed[/red]")
    table.add_row("device", device_line())
    table.add_row("bf16 training", bf16_line())
    table.add_row("4-bit (QLoRA)", four_bit_line())
    table.add_row("trackers (--report-to)", trackers_line())
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    table.add_row("hub", "offline (HF_HUB_OFFLINE=1)" if offline else "online allowed")
    table.add_row("store", os.environ.get("LLMPOST_STORE", "./artifacts"))
    return table


def device_line() -> str:
    """Where a stage would run (the line its manifest records), with torch's threads on a CPU."""
    import torch

    from llmpost.machine import device_description

    device = device_description()
    return f"{device}, {torch.get_num_threads()} torch threads" if device.startswith("cpu") else device


def bf16_line() -> str:
    """What a stage does when `bf16` is unset (models/precision.py)."""
    from llmpost.models.precision import bf16_by_default

    if bf16_by_default(is_tiny=False):
        return "on by default (tiny: off)"
    return "off by default (bf16 is not native here); --set bf16=true forces it"


def four_bit_line() -> str:
    """Quantise and run one real 4-bit layer: the honest test of QLoRA support."""
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError:
        return "[red]unavailable[/red]: pip install bitsandbytes"
    try:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4").to(device)
        layer(torch.randn(2, 64, device=device))
        return f"[green]ok[/green] (bitsandbytes {bnb.__version__}, NF4 on {device})"
    except Exception as exc:
        return f"[red]failed[/red]: {type(exc).__name__}: {exc}"


def trackers_line() -> str:
    """Which experiment trackers `--report-to` can open here (installed, not imported)."""
    from llmpost.reporting.tracking import PACKAGES, installed

    return ", ".join(f"{name} [green]ok[/green]" if installed(package) else f"{name} [dim]not installed[/dim]"
                     for name, package in PACKAGES.items())
