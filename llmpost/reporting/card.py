"""The artifact's README.md: what it is, what it came from, how good it is, how to load it."""

from __future__ import annotations

import json


def model_card(manifest: dict, eval_report: dict | None, usage: str = "") -> str:
    """Markdown model card built from the manifest and the held-out report."""
    ref = manifest.get("ref", manifest.get("name", "artifact"))
    base = manifest.get("base_model") or {}
    lines = [
        f"# {ref}",
        "",
        f"Stage `{manifest.get('stage')}` by llmpost {manifest.get('versions', {}).get('llmpost', '')}.",
        "",
        "## Lineage",
        "",
        f"- base model: `{base.get('id')}`" + (f" (revision {base['revision']})" if base.get("revision") else ""),
    ]
    for parent in manifest.get("parents", []):
        lines.append(f"- parent artifact: `{parent['ref']}`")
    for ds in manifest.get("datasets", []):
        lines.append(f"- data: `{ds['ref']}` ({ds['rows']} rows, fingerprint `{ds['fingerprint'][:12]}`)")
    lines += ["", "## Results", ""]
    metrics = manifest.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {format_value(v)} |" for k, v in metrics.items()]
    if eval_report:
        lines += ["", "Held-out report (`eval.json`):", "", "```json",
                  json.dumps({k: v for k, v in eval_report.items() if k != "samples"}, indent=2, default=str)[:3000],
                  "```"]
    lines += ["", "## Use", "", usage or default_usage(manifest), ""]
    return "\n".join(lines)


def format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def default_usage(manifest: dict) -> str:
    ref = manifest.get("ref", "NAME")
    return "\n".join([
        "```bash",
        f'llmpost generate {ref} "What is 2 plus 3?"',
        f"llmpost export {ref} --merge merged-model/   # a plain transformers model",
        "```",
        "",
        "With plain transformers/peft, load `model/`: a full model loads with `AutoModelForCausalLM`,",
        "an adapter with `peft.AutoPeftModelForCausalLM` (its adapter_config.json names the base).",
    ])
