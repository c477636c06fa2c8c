"""Model cards: what a model is, what it came from, how good it is, how to load it.

`model_card` is the artifact's README.md; `hub_card` is the README.md that `llmpost export
--push-to-hub` uploads with the model: the same card under the repo's name, with the Hub's
metadata block and how to load it from the Hub.
"""

from __future__ import annotations

import json

from llmpost import __version__


def model_card(manifest: dict, eval_report: dict | None, usage: str = "", title: str | None = None,
               lineage: list[str] | None = None) -> str:
    """Markdown model card built from the manifest and the held-out report.

    `title` replaces the artifact's ref as the heading; `lineage` adds lines to the Lineage section.
    """
    ref = manifest.get("ref", manifest.get("name", "artifact"))
    base = manifest.get("base_model") or {}
    lines = [
        f"# {title or ref}",
        "",
        f"Stage `{manifest.get('stage')}` by llmpost {manifest.get('versions', {}).get('llmpost', '')}.",
        "",
        "## Lineage",
        "",
        f"- base model: `{base.get('id')}`" + (f" (revision {base['revision']})" if base.get("revision") else "")
        + (", llmpost's built-in tiny Llama" if base.get("id") == "tiny" else ""),
    ]
    for parent in manifest.get("parents", []):
        lines.append(f"- parent artifact: `{parent['ref']}`")
    for ds in manifest.get("datasets", []):
        lines.append(f"- data: `{ds['ref']}` ({ds['rows']} rows, fingerprint `{ds['fingerprint'][:12]}`)")
    lines += lineage or []
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
        f"llmpost export {ref} --push-to-hub ORG/NAME  # to the Hugging Face Hub, with this card",
        "```",
        "",
        "With plain transformers/peft, load `model/`: a full model loads with `AutoModelForCausalLM`,",
        "an adapter with `peft.AutoPeftModelForCausalLM` (its adapter_config.json names the base).",
    ])


def hub_card(manifest: dict, eval_report: dict | None, repo_id: str, *, kind: str, base_model: str | None = None,
             revision: str | None = None, note: str = "") -> str:
    """The README.md pushed to the Hub with a finished artifact's model.

    `kind` is what is uploaded: "adapter" (a PEFT adapter), "model" (full weights) or "merged" (an
    adapter merged into its base). `base_model` is the Hub id of the model it derives from, for the
    Hub's model tree (None when that model is not on the Hub); `note` is a paragraph for the Use section.
    """
    import yaml

    metadata = {"library_name": "peft" if kind == "adapter" else "transformers",
                "tags": ["llmpost", manifest.get("stage") or "model"]}
    if base_model:
        metadata["base_model"] = base_model
    lineage = [f"- llmpost artifact: `{manifest.get('ref')}` (id `{manifest.get('id')}`), "
               f"uploaded with llmpost {__version__}"]
    if kind == "merged":
        lineage.append("- merged: the adapter folded into its base's weights (`llmpost export --merge`)")
    body = model_card(manifest, eval_report, hub_usage(repo_id, kind, revision, note), title=repo_id, lineage=lineage)
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n\n{body}"


def hub_usage(repo_id: str, kind: str, revision: str | None = None, note: str = "") -> str:
    """How to load the pushed model with plain transformers (or peft, for an adapter)."""
    at = f'"{repo_id}"' + (f', revision="{revision}"' if revision else "")
    if kind == "adapter":
        loader, imports = "AutoPeftModelForCausalLM", ["from peft import AutoPeftModelForCausalLM",
                                                       "from transformers import AutoTokenizer"]
    else:
        loader, imports = "AutoModelForCausalLM", ["from transformers import AutoModelForCausalLM, AutoTokenizer"]
    lines = ["```python", *imports, "", f"model = {loader}.from_pretrained({at})",
             f"tokenizer = AutoTokenizer.from_pretrained({at})", "```"]
    if kind == "adapter":
        lines += ["", "A LoRA adapter: peft loads the base model its adapter_config.json names underneath."]
    if note:
        lines += ["", note]
    return "\n".join(lines)
