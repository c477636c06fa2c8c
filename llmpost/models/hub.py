"""Upload a model directory to the Hugging Face Hub: the transfer behind `llmpost export --push-to-hub`.

    repo = open_repo(HubTarget("me/tiny-sft", private=True))  # token checked, repo created or found
    url = upload(repo, Path("merged/"), card="# me/tiny-sft ...", message="Upload sft@v1")

huggingface_hub does the transfer (create_repo, create_branch, upload_folder; LFS or Xet for
the weights) and is imported only here, when pushing. This module adds what a user needs
around it: every problem they can fix (a malformed repo id, offline mode, no token, a token
the Hub refuses) reported in one line with a hint, before anything slow happens where it can be.
What goes into the upload (which model, which card) is `pipeline/push.py`'s business.

The token is huggingface_hub's own: $HF_TOKEN, else the one `hf auth login` saved. It is
handed to huggingface_hub in memory and never written, logged or printed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmpost.errors import LlmpostError

LOGIN_HINT = "run `hf auth login`, or set HF_TOKEN to a token with write access"


@dataclass(frozen=True)
class HubTarget:
    """Where a push goes. Constructing one checks that `repo_id` is ORG/NAME."""

    repo_id: str
    private: bool = False  # for a new repo; an existing one keeps its visibility
    revision: str | None = None  # the branch to commit to (created from main when missing); None = main
    commit_message: str | None = None  # None: the caller's default

    def __post_init__(self) -> None:
        check_repo_id(self.repo_id)


@dataclass(frozen=True)
class HubRepo:
    """A repo that exists, with the branch to commit to, and a client holding the token."""

    target: HubTarget
    api: Any  # huggingface_hub.HfApi
    url: str  # the repo's page, or its branch's when the target names one


def check_repo_id(repo_id: str) -> None:
    """Raise unless `repo_id` is ORG/NAME by the Hub's rules (which huggingface_hub knows)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    hint = "write the repo as ORG/NAME (your user name or an organization, then the model's name), e.g. me/tiny-sft"
    if repo_id.count("/") != 1:
        raise LlmpostError(f"--push-to-hub {repo_id!r} is not of the form ORG/NAME", hint=hint)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise LlmpostError(f"--push-to-hub {repo_id!r} is not a valid Hub repo id: {exc}", hint=hint) from None


def hub_token() -> str:
    """The token huggingface_hub would use; raises when the Hub is off limits or no token is set."""
    from huggingface_hub import get_token, is_offline_mode

    if is_offline_mode():
        raise LlmpostError("cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1)",
                           hint="unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) for this command")
    token = get_token()
    if not token:
        raise LlmpostError("cannot push to the Hub: no Hugging Face token found", hint=LOGIN_HINT)
    return token


def open_repo(target: HubTarget) -> HubRepo:
    """Create the repo (or find it) and the branch: a token that may not write fails here, in seconds."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token())
    with refusals_explained(target.repo_id):
        url = str(api.create_repo(target.repo_id, private=target.private, exist_ok=True))
        if target.revision not in (None, "main"):
            api.create_branch(target.repo_id, branch=target.revision, exist_ok=True)
            url = f"{url}/tree/{target.revision}"
    return HubRepo(target, api, url)


def upload(repo: HubRepo, folder: Path, card: str, message: str) -> str:
    """Make the target branch hold `folder`'s files and `card` as README.md, nothing else; return its URL.

    `message` is the commit message unless the target sets its own.
    """
    with tempfile.TemporaryDirectory(prefix="llmpost-push-") as staging:
        stage(Path(folder), Path(staging), card)
        with refusals_explained(repo.target.repo_id):
            # upload_folder rather than one create_commit: with hf_xet it splits a large model into
            # several commits and resumes an interrupted upload when run again. delete_patterns="*"
            # removes what this upload does not bring (the Hub keeps .gitattributes, and history keeps
            # the rest): an adapter left beside merged weights, or a stale shard, would change what loads.
            repo.api.upload_folder(repo_id=repo.target.repo_id, folder_path=staging, revision=repo.target.revision,
                                   commit_message=repo.target.commit_message or message, delete_patterns="*")
    return repo.url


def stage(folder: Path, staging: Path, card: str) -> None:
    """Fill `staging` with links to `folder`'s files (never copies of the weights) and the card as README.md."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and relative != Path("README.md"):  # peft writes a placeholder card of its own
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).symlink_to(path.resolve())
    (staging / "README.md").write_text(card)


def hub_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub model id (ORG/NAME) and is not a local path, else None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not name or name.count("/") != 1 or Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


@contextmanager
def refusals_explained(repo_id: str) -> Iterator[None]:
    """Turn the Hub's 401/403 into a one-line error with the server's own words and what to do."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status not in (401, 403):
            raise
        said = " ".join((exc.server_message or str(exc)).split())
        org = repo_id.split("/")[0]
        raise LlmpostError(f"the Hub refused to write to {repo_id} (HTTP {status}): {said}",
                           hint=f"use a token that may write to `{org}` (see https://huggingface.co/settings/tokens): "
                                "run `hf auth login` again, or set HF_TOKEN to it") from None
