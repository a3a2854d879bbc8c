"""`apprentice dataset visualize ROOT --serve`: the visualize pages over HTTP on 127.0.0.1, rendered on demand.

`/` (or `/index.html`) lists the episodes; `/episode_<N>.html` is episode N's page, the same page
`write_site` writes, so links behave the same served or opened from disk. Rendered pages are kept for the
last few episodes (re-encoding the video is the slow part); one page is rendered at a time.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from apprentice.dataset.format import DatasetError
from apprentice.dataset.visualize import episode_filename, episode_html, index_html

HOST = "127.0.0.1"  # loopback only: reach it from elsewhere with `ssh -L PORT:127.0.0.1:PORT`
CACHED_PAGES = 8
_EPISODE = re.compile(r"^/episode_(\d+)\.html$")


class EpisodePages:
    """Renders and caches pages of one dataset; safe to call from the server's threads."""

    def __init__(self, root: str | Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, str] = OrderedDict()

    def page(self, path: str) -> str | None:
        """HTML for a request path, or None when the path names no page."""
        path = path.split("?", 1)[0]
        match = _EPISODE.match(path)
        if path not in ("/", "/index.html") and match is None:
            return None
        with self._lock:
            if path in self._pages:
                self._pages.move_to_end(path)
                return self._pages[path]
            text = index_html(self.root) if match is None else episode_html(self.root, int(match[1]), nav=True)
            self._pages[path] = text
            if len(self._pages) > CACHED_PAGES:
                self._pages.popitem(last=False)
            return text


def make_server(root: str | Path, port: int) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` (0 picks a free one; read it from `server_address`)."""
    pages = EpisodePages(root)
    index_html(root)  # a bad root fails here, before anyone opens a browser

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                text, status = pages.page(self.path), 200
                if text is None:
                    text, status = f"no page {self.path}; try / or /episode_0.html", 404
            except DatasetError as e:
                text, status = f"error: {e}", 404
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the CLI prints the address once; a line per request would bury it

    try:
        return ThreadingHTTPServer((HOST, port), Handler)
    except OSError as e:
        raise DatasetError(f"--port {port}: cannot listen on {HOST}:{port} ({e.strerror}); pass another --port "
                           "(0 picks a free one)") from None


def serve(root: str | Path, port: int, episode: int = 0) -> None:
    """Serve until Ctrl-C, printing the address of the index and of `episode`'s page."""
    server = make_server(root, port)
    url = f"http://{HOST}:{server.server_address[1]}/"
    print(f"serving {root} at {url} (episode {episode}: {url}{episode_filename(episode)}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
