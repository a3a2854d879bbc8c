"""A loopback stand-in for the Hugging Face Hub's HTTP API, enough for huggingface_hub's upload, download,
tag and file-system calls. It records every request so tests can assert what the client asked for."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class FakeHub:
    def __init__(self) -> None:
        self.commits: dict[str, dict[str, bytes]] = {}  # sha -> files
        self.refs: dict[str, dict[str, str]] = {}  # repo -> {branch or tag: sha}
        self.tags: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def resolve(self, repo: str, rev: str) -> str | None:
        refs = self.refs.get(repo)
        if refs is None:
            return None
        return refs.get(unquote(rev)) or (rev if rev in self.commits else None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes | dict | list = b"", headers: dict | None = None) -> None:
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json", **(headers or {})}
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, code: int, kind: str) -> None:
                self._send(code, {"error": kind}, {"X-Error-Code": kind, "X-Error-Message": kind})

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _route(self) -> None:
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.split("/") if p]
                hub.requests.append((self.command, url.path))
                body = self._body() if self.command in ("POST", "PUT", "DELETE") else b""
                if parts[:3] == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo = f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                    if repo in hub.refs:
                        return self._send(409, {"error": "exists", "url": f"{hub.url}/datasets/{repo}"})
                    sha = hashlib.sha1(repo.encode()).hexdigest()
                    hub.commits[sha] = {}
                    hub.refs[repo] = {"main": sha}
                    return self._send(200, {"url": f"{hub.url}/datasets/{repo}"})
                if parts[:2] == ["api", "validate-yaml"]:  # the client checks a README card's front matter
                    return self._send(200, {"errors": [], "warnings": []})
                if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                    return self._api("/".join(parts[2:4]), parts[4:], parse_qs(url.query), body)
                if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                    return self._resolve("/".join(parts[1:3]), parts[4], "/".join(parts[5:]))
                return self._error(404, "NotFound")

            def _api(self, repo: str, rest: list[str], query: dict, body: bytes) -> None:
                if repo not in hub.refs:
                    return self._error(404, "RepoNotFound")
                action = rest[0] if rest else "revision"
                rev = rest[1] if len(rest) > 1 else "main"
                if action in ("preupload",):
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in files]})
                if action == "commit":
                    base = hub.resolve(repo, rev)
                    files = dict(hub.commits[base])
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    sha = hashlib.sha1(repr(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items()))
                                       .encode() + base.encode()).hexdigest()
                    hub.commits[sha] = files
                    hub.refs[repo][unquote(rev)] = sha
                    return self._send(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{sha}",
                                            "commitOid": sha, "success": True})
                if action == "tag":
                    if self.command == "DELETE":
                        if hub.refs[repo].pop(rev, None) is None:
                            return self._error(404, "RevisionNotFound")
                        return self._send(200, {})
                    sha = hub.resolve(repo, rev)
                    hub.refs[repo][json.loads(body)["tag"]] = sha
                    return self._send(200, {})
                if action == "branch":
                    hub.refs[repo].setdefault(rev, hub.refs[repo]["main"])
                    return self._send(200, {})
                sha = hub.resolve(repo, rev)
                if sha is None:
                    return self._error(404, "RevisionNotFound")
                files = hub.commits[sha]
                if action == "revision":
                    return self._send(200, {"id": repo, "sha": sha, "private": False, "downloads": 0, "likes": 0,
                                            "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                                            "siblings": [{"rfilename": p, "size": len(b)} for p, b in files.items()]})
                if action == "tree":
                    prefix = "/".join(rest[2:]).strip("/")
                    recursive = query.get("recursive", ["false"])[0].lower() == "true"
                    return self._send(200, self._entries(files, prefix, recursive))
                if action == "paths-info":
                    form = parse_qs(body.decode())
                    paths = form.get("paths") or json.loads(body or b"{}").get("paths", [])
                    entries = self._entries(files, "", True)
                    return self._send(200, [e for e in entries if e["path"] in paths])
                return self._error(404, "NotFound")

            def _entries(self, files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
                out: dict[str, dict] = {}
                for path, data in files.items():
                    if prefix and not path.startswith(prefix + "/"):
                        continue
                    rel = path[len(prefix) + 1:] if prefix else path
                    pieces = rel.split("/")
                    for depth in range(1, len(pieces)):
                        d = "/".join(([prefix] if prefix else []) + pieces[:depth])
                        if recursive or depth == 1:
                            out.setdefault(d, {"type": "directory", "path": d, "oid": "0" * 40, "size": 0})
                    if recursive or len(pieces) == 1:
                        out[path] = {"type": "file", "path": path, "size": len(data),
                                     "oid": hashlib.sha1(data).hexdigest()}
                return list(out.values())

            def _resolve(self, repo: str, rev: str, path: str) -> None:
                sha = hub.resolve(repo, rev) if repo in hub.refs else None
                if sha is None:
                    return self._error(404, "RevisionNotFound")
                data = hub.commits[sha].get(path)
                if data is None:
                    return self._error(404, "EntryNotFound")
                headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                           "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
                ranges = self.headers.get("Range")
                if ranges and ranges.startswith("bytes="):
                    start_s, _, end_s = ranges[6:].partition("-")
                    start = int(start_s)
                    end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                    return self._send(206, data[start:end + 1], headers)
                return self._send(200, data, headers)

            do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _route

        return Handler
