"""`llmpost export --push-to-hub` against a stand-in Hub on 127.0.0.1 (tests/integration/hub_server.py).

The real CLI talks to the stand-in through huggingface_hub itself (HF_ENDPOINT), with a fake
token; the stand-in keeps what arrives as plain files, which the tests read and load with
plain transformers/peft, as someone downloading the repo would. Every failure a user can fix
exits 2 with a hint, and no token ever lands in the output, the store or HF_HOME.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path

import pytest
from conftest import ok, run_cli
from integration.hub_server import HubStandIn

from llmpost.artifacts.store import Store

WRITE_TOKEN = "hf_llmposttestwrite" + secrets.token_hex(12)
READ_TOKEN = "hf_llmposttestread" + secrets.token_hex(12)
ORG = "llmpost-tests"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubStandIn(tmp_path_factory.mktemp("hub"), write_token=WRITE_TOKEN, read_token=READ_TOKEN) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    """An empty Hugging Face home for the pushes: no saved token, and a place to search for a leaked one."""
    return tmp_path_factory.mktemp("hf-home")


def push(hub: HubStandIn, hf_home: Path, store: Path, ref: str, *args: str, token: str = WRITE_TOKEN, **env: str):
    """`llmpost export REF ARGS` against the stand-in; the output never shows a token."""
    proc = run_cli("export", ref, *args, store=store, env={
        "HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HOME": str(hf_home), "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_HUB_OFFLINE": "0",  # conftest sets it for the suite; pushing needs the (stand-in) Hub
        "HF_HUB_DISABLE_XET": "1",  # the stand-in speaks git-LFS, not Xet
        **env})
    assert WRITE_TOKEN not in proc.stdout + proc.stderr and READ_TOKEN not in proc.stdout + proc.stderr
    return proc


def repo_info(hub: HubStandIn, repo: str) -> dict:
    """What `HfApi().model_info(repo)` reads: the Hub's record of the repo."""
    request = urllib.request.Request(f"{hub.url}/api/models/{repo}", headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def no_token_under(*roots: Path) -> None:
    leaks = [str(p) for root in roots for p in root.rglob("*")
             if p.is_file() and any(t.encode() in p.read_bytes() for t in (WRITE_TOKEN, READ_TOKEN))]
    assert not leaks


def test_push_a_full_model_private_with_its_card(hub, hf_home, sft_store):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo = f"{ORG}/tiny-sft"
    proc = ok(push(hub, hf_home, sft_store, "sft", "--push-to-hub", repo, "--private"))
    assert proc.stdout.strip() == f"{hub.url}/{repo}"
    assert repo_info(hub, repo)["private"] is True

    art, files = Store(sft_store).resolve("sft"), hub.files(repo)
    model_files = {p.name for p in art.model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= model_files
    assert {p.name for p in files.iterdir()} == model_files | {"README.md"}
    assert (files / "model.safetensors").read_bytes() == (art.model_dir / "model.safetensors").read_bytes()
    (commit,) = hub.commits(repo)
    assert ["lfsFile", "model.safetensors"] in commit["operations"]  # weights went by LFS, like on the Hub
    assert commit["summary"] == "Upload sft@v1 (model) with llmpost 0.1.0"

    card = (files / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and f"# {repo}" in card
    for expected in ("base model: `tiny`", "builtin:arith-sft", "| exact_match |", "`sft@v1`", "uploaded with llmpost",
                     f'AutoModelForCausalLM.from_pretrained("{repo}")'):
        assert expected in card, expected

    model, tokenizer = AutoModelForCausalLM.from_pretrained(files), AutoTokenizer.from_pretrained(files)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.chat_template
    no_token_under(sft_store, hf_home)


def test_push_an_adapter_then_its_merge_to_a_branch(hub, hf_home, sft_store, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    ok(run_cli("sft", "--model", "sft", "--lora", "--out", "hub-lora", "--set", "max_steps=1", "--set", "lora.r=4",
               "--set", "eval.enabled=false", store=sft_store))
    repo = f"{ORG}/tiny-sft-lora"
    proc = ok(push(hub, hf_home, sft_store, "hub-lora", "--push-to-hub", repo))
    assert "is not on the Hub" in proc.stderr and "--merge" in proc.stderr  # its base is a local artifact
    assert repo_info(hub, repo)["private"] is False
    adapter = hub.files(repo)
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= names
    assert "model.safetensors" not in names
    card = (adapter / "README.md").read_text()
    for expected in ("library_name: peft", "base model: `tiny`", "parent artifact: `sft@v1`", "AutoPeftModelForCausalLM",
                     "not on the Hub"):
        assert expected in card, expected
    assert AutoPeftModelForCausalLM.from_pretrained(adapter).peft_config["default"].r == 4

    merged = tmp_path / "merged"
    proc = ok(push(hub, hf_home, sft_store, "hub-lora", "--merge", str(merged), "--push-to-hub", repo,
                   "--branch", "merged", "--commit-message", "merged for serving"))
    assert proc.stdout.strip() == f"{hub.url}/{repo}/tree/merged"
    branch = hub.files(repo, "merged")
    names = {p.name for p in branch.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= names
    assert "adapter_config.json" not in names  # copied from main with the branch, removed by the push
    assert (branch / "model.safetensors").read_bytes() == (merged / "model.safetensors").read_bytes()
    assert "merged: the adapter folded" in (branch / "README.md").read_text()
    assert hub.commits(repo)[-1]["summary"] == "merged for serving"
    assert (adapter / "adapter_config.json").is_file()  # main still holds the adapter
    model = AutoModelForCausalLM.from_pretrained(branch)
    assert not any("lora" in name for name, _ in model.named_parameters())
    no_token_under(sft_store, hf_home, tmp_path)


REPO = ("--push-to-hub", f"{ORG}/refused")
REFUSALS = {  # id: (ref, args, token, extra env, what stderr says)
    "no-target": ("sft", (), WRITE_TOKEN, {}, ["export needs --merge DIR, --push-to-hub ORG/NAME, or both"]),
    "hub-flag-alone": ("sft", ("--merge", "x", "--private"), WRITE_TOKEN, {}, ["--private would do nothing"]),
    "repo-id": ("sft", ("--push-to-hub", "tiny-sft"), WRITE_TOKEN, {}, ["'tiny-sft' is not of the form ORG/NAME"]),
    "no-token": ("sft", REPO, "", {}, ["no Hugging Face token", "hf auth login", "HF_TOKEN"]),
    "offline": ("sft", REPO, WRITE_TOKEN, {"HF_HUB_OFFLINE": "1"}, ["offline", "HF_HUB_OFFLINE=1"]),
    "no-artifact": ("nosuch", REPO, WRITE_TOKEN, {}, ["no artifact named `nosuch`", "known:"]),
    "bad-token": ("sft", REPO, "hf_" + "x" * 30, {}, ["HTTP 401", "Invalid credentials", "hf auth login"]),
    "read-only-token": ("sft", REPO, READ_TOKEN, {}, ["HTTP 403", "don't have the rights", f"write to `{ORG}`"]),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_what_a_user_can_fix_exits_2_with_a_hint(hub, hf_home, sft_store, case):
    ref, args, token, env, messages = case
    proc = push(hub, hf_home, sft_store, ref, *args, token=token, **env)
    stderr = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 2 and "hint:" in stderr and "Traceback" not in stderr, proc.stderr
    for message in messages:
        assert message in stderr, message
    assert not hub.commits(f"{ORG}/refused")
