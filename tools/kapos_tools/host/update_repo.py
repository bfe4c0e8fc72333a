"""Serve an update repository (`kapos release` output) as static files over HTTP.

    kapos host --update-repo site/ --update-listen 127.0.0.1:8080

GET and HEAD only, files under the directory only, `Range: bytes=N-` for resumed
downloads. Nothing here is trusted by a terminal: every byte it serves is checked against
signed TUF metadata, so a plain web server (or a CDN) can serve the same directory.
"""

import http.server
import logging
import os
import threading
import urllib.parse

log = logging.getLogger("kapos.host.updates")

CHUNK = 64 * 1024


class RepoHandler(http.server.BaseHTTPRequestHandler):
    server_version = "kapos-updates"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a silent client is dropped

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def _file(self):
        base = os.path.realpath(self.server.repo_dir)
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = os.path.realpath(os.path.join(base, rel))
        if not path.startswith(base + os.sep) or not os.path.isfile(path):
            return None
        return path

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body):
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start = 0
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes=") and spec.endswith("-") and spec[6:-1].isdigit():
            start = int(spec[6:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                f.seek(start)
                self.send_body(f, size - start)

    def send_body(self, f, length):
        while length > 0:
            block = f.read(min(CHUNK, length))
            if not block:
                return
            self.wfile.write(block)
            length -= len(block)


class RepoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repo_dir, address=("127.0.0.1", 0), handler=RepoHandler):
        self.repo_dir = repo_dir
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        """A client that goes away mid-download (power cut, resume later) is normal."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("update client %s went away", client_address[0])
            return
        super().handle_error(request, client_address)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return "http://%s:%d" % (host, port)

    def start(self):
        """Serve in a thread; returns self (stop with shutdown(), then server_close())."""
        threading.Thread(target=self.serve_forever, name="kapos-update-repo", daemon=True).start()
        log.warning("update repository %s served on %s", self.repo_dir, self.url)
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


def serve_from_args(args):
    """The host CLI's hook: start serving when --update-repo is given; returns the server or None."""
    repo = getattr(args, "update_repo", None)
    if not repo:
        return None
    host, _, port = (getattr(args, "update_listen", None) or "127.0.0.1:8080").rpartition(":")
    return RepoServer(repo, (host or "127.0.0.1", int(port))).start()


def add_arguments(parser):
    parser.add_argument("--update-repo", metavar="DIR", help="also serve this update repository over HTTP")
    parser.add_argument("--update-listen", metavar="HOST:PORT", default="127.0.0.1:8080",
                        help="address for --update-repo (default 127.0.0.1:8080)")
