"""The model card pushed to the Hub, and which model names count as Hub ids.

The integration tests (tests/integration/test_export_hub.py) push models built on `tiny`, which
is not on the Hub; a base that is on the Hub shows here, in the card's metadata block.
"""

from __future__ import annotations

import yaml

from llmpost.models.hub import hub_id
from llmpost.reporting.card import hub_card

MANIFEST = {"ref": "dpo-lora@v2", "id": "0" * 32, "stage": "dpo", "versions": {"llmpost": "0.1.0"},
            "base_model": {"id": "Qwen/Qwen2.5-0.5B", "revision": None, "path": "Qwen/Qwen2.5-0.5B"},
            "parents": [{"ref": "sft@v1"}], "datasets": [], "metrics": {"exact_match": 0.42}}


def metadata(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_an_adapter_card_names_its_hub_base_and_loads_with_peft():
    card = hub_card(MANIFEST, None, "me/qwen-dpo", kind="adapter", base_model="Qwen/Qwen2.5-0.5B", revision="v2")
    assert metadata(card) == {"library_name": "peft", "tags": ["llmpost", "dpo"], "base_model": "Qwen/Qwen2.5-0.5B"}
    assert "# me/qwen-dpo" in card and "parent artifact: `sft@v1`" in card and "| exact_match | 0.42 |" in card
    assert 'AutoPeftModelForCausalLM.from_pretrained("me/qwen-dpo", revision="v2")' in card


def test_a_merged_card_loads_with_transformers_and_says_it_was_merged():
    card = hub_card(MANIFEST, {"exact_match": 0.42}, "me/qwen-dpo", kind="merged", base_model=None)
    assert metadata(card) == {"library_name": "transformers", "tags": ["llmpost", "dpo"]}
    assert 'AutoModelForCausalLM.from_pretrained("me/qwen-dpo")' in card and "merged: the adapter folded" in card


def test_hub_ids_are_org_slash_name_and_not_local_paths(tmp_path, monkeypatch):
    assert hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    (tmp_path / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for local_or_malformed in ("tiny", "smollm2", "/abs/path/model", "models/mine", "a/b/c", "me/bad--name", None):
        assert hub_id(local_or_malformed) is None, local_or_malformed
