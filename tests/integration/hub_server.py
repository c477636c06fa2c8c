"""A stand-in for the Hugging Face Hub's upload API, on 127.0.0.1, storing what it receives on disk.

It answers just what huggingface_hub 2.x calls for `create_repo`, `create_branch` and
`upload_folder`, the way the Hub does, with the Xet protocol off (HF_HUB_DISABLE_XET=1 in the
client's environment): weights then travel by the older git-LFS batch protocol, which this speaks.

    POST /api/repos/create                        {name, organization, visibility}: a model repo
    GET  /api/models/ORG/NAME                     repo info: {id, private, sha, branches}
    GET  /api/models/ORG/NAME/tree/REV            every file at REV (one page; `recursive` is implied)
    POST /api/models/ORG/NAME/branch/BRANCH       a branch, copied from main
    POST /api/validate-yaml                       the README's metadata block must be a YAML mapping
    POST /api/models/ORG/NAME/preupload/REV       per file: "lfs" for binary or large files, else "regular"
    POST /ORG/NAME.git/info/lfs/objects/batch     LFS batch API, basic transfer: where to PUT each object
    PUT  /lfs/OID                                 an LFS object; refused unless its sha256 is OID
    POST /api/models/ORG/NAME/commit/REV          NDJSON commit: header, inline (base64) files, LFS
                                                  pointers, deleted files

Files land in ROOT/repos/ORG/NAME/REV/ as plain files, so a test loads them with
transformers; ROOT/repos/ORG/NAME/commits.jsonl logs each commit (revision, summary, [operation, path] pairs).
Auth is a Bearer token: the write token may do all of it, the read token is refused writes
with 403 as the Hub refuses a read-only token, and anything else gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub sends text files this large by LFS too
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, pattern, handler name)
    ("POST", r"/api/repos/create", "create_repo"),
    ("GET", rf"/api/models/{REPO}(?:/revision/[^/]+)?", "repo_info"),
    ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)", "list_tree"),
    ("POST", rf"/api/models/{REPO}/branch/(?P<branch>[^/]+)", "create_branch"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", r"/lfs/(?P<oid>[0-9a-f]{64})", "lfs_put"),
    ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", "commit"),
]


class HubError(Exception):
    """An error answer: HTTP status, the body's `error` (+ `extra` keys), and the X-Error-Code the client reads."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubStandIn:
    """The server; `with HubStandIn(root, write_token=..., read_token=...) as hub:` serves on `hub.url`."""

    def __init__(self, root: Path, write_token: str, read_token: str):
        self.root = Path(root)
        self.tokens = {write_token: "write", read_token: "read"}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what a test reads -------------------------------------------------

    def files(self, repo: str, revision: str = "main") -> Path:
        """The directory holding `repo`'s files at `revision`."""
        return self.root / "repos" / repo / revision

    def commits(self, repo: str) -> list[dict]:
        path = self.root / "repos" / repo / "commits.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    # -- the API -----------------------------------------------------------

    def meta(self, repo: str) -> dict:
        path = self.root / "repos" / repo / "repo.json"
        if not path.is_file():
            raise HubError(404, f"Repository not found: {repo}", code="RepoNotFound")
        return json.loads(path.read_text())

    def save_meta(self, repo: str, meta: dict) -> None:
        (self.root / "repos" / repo / "repo.json").write_text(json.dumps(meta))

    def create_repo(self, body: dict, access: str) -> dict:
        repo = f"{body.get('organization')}/{body.get('name')}"
        if access != "write":
            raise HubError(403, f'You don\'t have the rights to create a model under the namespace "{body.get("organization")}"')
        url = f"{self.url}/{repo}"
        with self.lock:
            if (self.root / "repos" / repo / "repo.json").is_file():
                raise HubError(409, "You already created this model repo", url=url)  # the client reads `url`
            self.files(repo).mkdir(parents=True)
            self.save_meta(repo, {"private": body.get("visibility") == "private", "branches": {"main": None}})
        return {"url": url, "name": repo}

    def repo_info(self, repo: str, access: str) -> dict:
        meta = self.meta(repo)
        return {"id": repo, "private": meta["private"], "sha": meta["branches"]["main"],
                "branches": sorted(meta["branches"])}

    def list_tree(self, repo: str, rev: str, access: str) -> list[dict]:
        self.meta(repo)
        tree = self.files(repo, unquote(rev))
        if not tree.is_dir():
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", code="RevisionNotFound")
        return [{"type": "file", "path": p.relative_to(tree).as_posix(), "size": p.stat().st_size,
                 "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in sorted(tree.rglob("*")) if p.is_file()]

    def create_branch(self, repo: str, branch: str, access: str) -> dict:
        self.require_write(access)
        with self.lock:
            meta = self.meta(repo)
            if unquote(branch) in meta["branches"]:
                raise HubError(409, f"Branch {unquote(branch)} already exists")
            shutil.copytree(self.files(repo), self.files(repo, unquote(branch)))
            meta["branches"][unquote(branch)] = meta["branches"]["main"]
            self.save_meta(repo, meta)
        return {}

    def validate_yaml(self, body: dict, access: str) -> dict:
        match = re.match(r"^---\n(.*?)\n---\n", body.get("content", ""), re.S)
        if match and not isinstance(yaml.safe_load(match.group(1)), dict):
            raise HubError(400, "metadata block is not a YAML mapping")
        return {"errors": [], "warnings": []}

    def preupload(self, repo: str, rev: str, body: dict, access: str) -> dict:
        self.require_branch(repo, rev, access)
        return {"files": [{"path": f["path"], "uploadMode": upload_mode(f), "shouldIgnore": False, "oid": None}
                          for f in body["files"]]}

    def lfs_batch(self, repo: str, body: dict, access: str) -> dict:
        self.require_write(access)
        self.meta(repo)
        return {"transfer": "basic", "objects": [
            {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{self.url}/lfs/{o['oid']}"}}}
            for o in body["objects"]]}

    def lfs_put(self, oid: str, data: bytes) -> dict:
        # Like the presigned storage URLs the Hub hands out: no token here, the content proves itself.
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "content does not match its sha256")
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs" / oid).write_bytes(data)
        return {}

    def commit(self, repo: str, rev: str, lines: list[dict], access: str) -> dict:
        self.require_branch(repo, rev, access)
        header, *operations = lines
        tree = self.files(repo, unquote(rev))
        for op in operations:
            self.apply(tree, op)
        oid = hashlib.sha1(json.dumps(lines, sort_keys=True).encode()).hexdigest()
        with self.lock:
            meta = self.meta(repo)
            meta["branches"][unquote(rev)] = oid
            self.save_meta(repo, meta)
            with open(self.root / "repos" / repo / "commits.jsonl", "a") as log:
                log.write(json.dumps({"revision": unquote(rev), "summary": header["value"]["summary"],
                                      "operations": [[op["key"], op["value"]["path"]] for op in operations]}) + "\n")
        return {"commitUrl": f"{self.url}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}

    def apply(self, tree: Path, op: dict) -> None:
        value = op["value"]
        target = tree / value["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if op["key"] == "file":
            target.write_bytes(base64.b64decode(value["content"]))
        elif op["key"] == "lfsFile":
            blob = self.root / "lfs" / value["oid"]
            if not blob.is_file():
                raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
            shutil.copyfile(blob, target)
        elif op["key"] == "deletedFile":
            target.unlink()
        else:
            raise HubError(400, f"the stand-in does not implement commit operation {op['key']!r}")

    def require_write(self, access: str) -> None:
        if access != "write":
            raise HubError(403, "You don't have write access to this repository (read-only token)")

    def require_branch(self, repo: str, rev: str, access: str) -> None:
        self.require_write(access)
        if unquote(rev) not in self.meta(repo)["branches"]:
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", code="RevisionNotFound")


def upload_mode(file: dict) -> str:
    sample = base64.b64decode(file["sample"])
    return "lfs" if b"\0" in sample or file["size"] >= LFS_MIN_SIZE else "regular"


def make_handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def do_PUT(self) -> None:
            self.route("PUT")

        def route(self, method: str) -> None:
            path = urlsplit(self.path).path
            body = self.read_body()
            route = find_route(method, path)
            if route is None:
                return self.reply(404, {"error": f"the stand-in has no route {method} {path}"})
            try:
                self.reply(200, self.call(*route, body))
            except HubError as exc:
                self.reply(exc.status, {"error": exc.message, **exc.extra}, code=exc.code)

        def call(self, name: str, params: dict, body: bytes):
            if name == "lfs_put":
                return hub.lfs_put(params["oid"], body)
            access = self.access()
            if name == "commit":
                params["lines"] = [json.loads(line) for line in body.splitlines() if line.strip()]
            elif method_takes_body(name):
                params["body"] = json.loads(body or b"{}")
            return getattr(hub, name)(**params, access=access)

        def access(self) -> str:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            if token not in hub.tokens:
                raise HubError(401, "Invalid credentials in Authorization header")
            return hub.tokens[token]

        def read_body(self) -> bytes:  # huggingface_hub sends a Content-Length, LFS uploads included
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def reply(self, status: int, payload, code: str | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                self.send_header("X-Error-Message", payload["error"])
                if code:
                    self.send_header("X-Error-Code", code)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def find_route(method: str, path: str) -> tuple[str, dict] | None:
    """The handler's name and the URL's parameters for a request, or None."""
    for verb, pattern, name in ROUTES:
        match = re.fullmatch(pattern, path)
        if verb == method and match:
            return name, match.groupdict()
    return None


def method_takes_body(name: str) -> bool:
    return name in ("create_repo", "validate_yaml", "preupload", "lfs_batch")
