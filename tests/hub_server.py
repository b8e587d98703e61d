"""A Hub-API-compatible server for tests: in memory, standard library only, bound to 127.0.0.1.

It serves the calls that ``huggingface_hub`` (create_repo, upload_folder, model.push_to_hub, ModelCard) and
``transformers`` (``from_pretrained`` by repo id, remote code) make: whoami, repos create/delete, model info,
tree, paths-info, refs, commits, preupload (always "regular", so files travel base64-inline in the NDJSON commit
and neither LFS nor Xet is needed), commit, validate-yaml, and HEAD/GET ``resolve`` with the ``X-Repo-Commit`` /
``ETag`` headers and the ``X-Error-Code`` 404s the client turns into RepoNotFound / EntryNotFound /
RevisionNotFound. Set ``fail_commits`` to make every commit fail with a 403 (to test what a failed push leaves
behind; a 403, not a 5xx, because the client retries 5xx answers with a backoff of about half a minute).

Usage::

    with HubServer() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test", "HF_HOME": tmp}  # set before importing the client
"""

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "tester"


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    def resolve(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c.oid == revision), None)


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def card_data(files: dict[str, bytes]) -> dict | None:
    text = files.get("README.md", b"").decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1]
    return yaml.safe_load(front) or {}


class HubServer:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.fail_commits = False
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].resolve(revision).files)

    def commit(self, repo: Repo, message: str, added: dict[str, bytes], deleted: list[str]) -> Commit:
        files = dict(repo.commits[-1].files) if repo.commits else {}
        for path in deleted:
            for name in [n for n in files if n == path or n.startswith(path.rstrip("/") + "/")]:
                del files[name]
        files.update(added)
        parent = repo.commits[-1].oid if repo.commits else ""
        oid = hashlib.sha1(f"{parent}{message}{len(repo.commits)}{sorted(files)}".encode()).hexdigest()
        repo.commits.append(Commit(oid, message, files))
        return repo.commits[-1]


def _handler_for(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        # -- helpers ---------------------------------------------------------------------------------------
        def reply(self, status=200, body=b"", content_type="application/json", headers=None, head=False):
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def error(self, status, code, message, head=False):
            self.reply(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message}, head=head)

        def body(self) -> bytes:
            return self.raw

        def json_body(self) -> dict:
            raw = self.body()
            if "json" in (self.headers.get("Content-Type") or ""):
                return json.loads(raw or b"{}")
            return {key: values if len(values) > 1 or key == "paths" else values[0]
                    for key, values in parse_qs(raw.decode()).items()}

        def authorized(self) -> bool:
            return (self.headers.get("Authorization") or "").startswith("Bearer ")

        def repo(self, repo_id, head=False) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self.error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
            return repo

        def revision(self, repo, revision, head=False) -> Commit | None:
            commit = repo.resolve(unquote(revision))
            if commit is None:
                self.error(404, "RevisionNotFound", f"Revision {revision} not found", head=head)
            return commit

        # -- routing ---------------------------------------------------------------------------------------
        def do_HEAD(self):
            self.route("HEAD")

        def do_GET(self):
            self.route("GET")

        def do_POST(self):
            self.route("POST")

        def do_DELETE(self):
            self.route("DELETE")

        def route(self, method):
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            # read every body, used or not: leftover bytes would corrupt the next request on a keep-alive connection
            self.raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with hub.lock:
                hub.requests.append((method, url.path))
                try:
                    self.dispatch(method, parts, parse_qs(url.query))
                except Exception as error:  # a bug in the fake hub must show up as a server error, not a hang
                    self.reply(500, {"error": f"{type(error).__name__}: {error}"})

        def dispatch(self, method, parts, query):
            if parts[:2] == ["api", "whoami-v2"]:
                if not self.authorized():
                    return self.error(401, "Unauthorized", "Invalid credentials in Authorization header")
                return self.reply(body={"type": "user", "name": USER, "fullname": "Test User", "orgs": [],
                                        "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
            if parts[:2] == ["api", "validate-yaml"]:
                return self.reply(body={"errors": [], "warnings": []})
            if parts[:3] == ["api", "repos", "create"] and method == "POST":
                return self.create_repo(self.json_body())
            if parts[:3] == ["api", "repos", "delete"]:
                payload = self.json_body()
                repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
                hub.repos.pop(repo_id, None)
                return self.reply(body={})
            if len(parts) >= 4 and parts[:2] == ["api", "models"]:
                return self.model_api(method, f"{parts[2]}/{parts[3]}", parts[4:], query)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self.resolve(method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            self.error(404, "NotFound", f"no route for {method} /{'/'.join(parts)}")

        def create_repo(self, payload):
            if not self.authorized():
                return self.error(401, "Unauthorized", "You must be authenticated to create a repository")
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            if repo_id in hub.repos:
                self.send_response(409)
                body = json.dumps({"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return self.wfile.write(body)
            repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
            hub.commit(repo, "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, [])
            hub.repos[repo_id] = repo
            self.reply(body={"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

        def model_api(self, method, repo_id, rest, query):
            repo = self.repo(repo_id)
            if repo is None:
                return
            action = rest[0] if rest else ""
            if action in ("", "revision") and method == "GET":
                commit = self.revision(repo, rest[1] if action == "revision" else "main")
                return commit and self.reply(body=self.info(repo, commit))
            if action == "refs":
                return self.reply(body={"branches": [{"name": "main", "ref": "refs/heads/main",
                                                      "targetCommit": repo.commits[-1].oid}], "tags": [], "converts": []})
            if action == "commits":
                commit = self.revision(repo, rest[1] if len(rest) > 1 else "main")
                if commit:
                    history = repo.commits[: repo.commits.index(commit) + 1][::-1]
                    self.reply(body=[{"id": c.oid, "title": c.message, "message": c.message, "authors": [{"user": USER}],
                                      "date": c.date} for c in history])
                return
            if action == "tree":
                commit = self.revision(repo, rest[1])
                if commit:
                    prefix = "/".join(rest[2:])
                    self.reply(body=self.tree(commit, prefix, recursive=query.get("recursive", ["false"])[0] == "true"))
                return
            if action == "paths-info":
                commit = self.revision(repo, rest[1])
                if commit:
                    paths = self.json_body().get("paths", [])
                    self.reply(body=[self.entry(p, commit.files[p]) for p in paths if p in commit.files])
                return
            if action == "preupload":
                files = self.json_body().get("files", [])
                return self.reply(body={"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files], "commitOid": repo.commits[-1].oid})
            if action == "commit" and method == "POST":
                return self.apply_commit(repo, self.body())
            self.error(404, "NotFound", f"unsupported model API call {action!r}")

        def apply_commit(self, repo, raw):
            if not self.authorized():
                return self.error(401, "Unauthorized", "You must be authenticated to commit")
            if hub.fail_commits:
                return self.error(403, "Forbidden", "commit rejected by the test server (fail_commits=True)")
            message, added, deleted = "", {}, []
            for line in raw.splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    message = value.get("summary", "")
                elif item["key"] == "file":
                    added[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    deleted.append(value["path"])
                else:
                    return self.error(400, "BadRequest", f"the test server accepts only regular files, got {item['key']}")
            commit = hub.commit(repo, message, added, deleted)
            self.reply(body={"commitUrl": f"{hub.url}/{repo.repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
                             "pullRequestUrl": None})

        def entry(self, path, data):
            return {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}

        def tree(self, commit, prefix, recursive):
            prefix = prefix.strip("/")
            entries, folders = [], set()
            for path, data in sorted(commit.files.items()):
                if prefix and not path.startswith(prefix + "/"):
                    continue
                relative = path[len(prefix) + 1:] if prefix else path
                if "/" in relative:
                    folder = (prefix + "/" if prefix else "") + relative.split("/")[0]
                    if folder not in folders:
                        folders.add(folder)
                        entries.append({"type": "directory", "path": folder, "oid": git_blob_sha(folder.encode())})
                    if not recursive:
                        continue
                entries.append(self.entry(path, data))
            return entries

        def info(self, repo, commit):
            data = card_data(commit.files) or {}
            return {
                "_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
                "sha": commit.oid, "private": repo.private, "disabled": False, "gated": False,
                "lastModified": commit.date, "createdAt": repo.commits[0].date, "tags": data.get("tags", []),
                "library_name": data.get("library_name"), "pipeline_tag": data.get("pipeline_tag"),
                "cardData": card_data(commit.files), "downloads": 0, "likes": 0,
                "siblings": [{"rfilename": name} for name in sorted(commit.files)],
            }

        def resolve(self, method, repo_id, revision, path):
            head = method == "HEAD"
            repo = self.repo(repo_id, head=head)
            commit = repo and self.revision(repo, revision, head=head)
            if commit is None:
                return
            if path not in commit.files:
                return self.error(404, "EntryNotFound", f"{path} does not exist at {revision}", head=head)
            data = commit.files[path]
            headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha(data)}"', "Accept-Ranges": "bytes"}
            status = 200
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                start, _, end = ranged[6:].partition("-")
                stop = int(end) + 1 if end else len(data)
                headers["Content-Range"] = f"bytes {int(start)}-{stop - 1}/{len(data)}"
                data, status = data[int(start):stop], 206
            self.reply(status, data, content_type="application/octet-stream", headers=headers, head=head)

    return Handler
