#!/usr/bin/env python3
"""HTTPS server for gib's sources tests, on 127.0.0.1 only.

A fake Gentoo mirror needs what python's http.server lacks: HTTP Range requests (resumed
downloads), a transfer that breaks off once (to test resuming), a log of the requests, and
`git http-backend` behind /git/ (a smart-HTTP git server). Prints the port it listens on.
"""

import argparse
import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.parse

ARGS = None
LOCK = threading.Lock()
DROPS = {}


def log(entry):
    with LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        log({"method": self.command, "path": path, "range": self.headers.get("Range")})
        if path.startswith("/git/"):
            self.git(path[len("/git"):], url.query)
        elif self.command == "GET":
            self.static(path)
        else:
            self.send_error(405)

    def static(self, path):
        parts = [p for p in path.split("/") if p]
        if any(p in ("..", ".") for p in parts):
            self.send_error(403)
            return
        fs_path = os.path.join(ARGS.root, *parts)
        if not os.path.isfile(fs_path):
            self.send_error(404)
            return
        with open(fs_path, "rb") as f:
            data = f.read()
        size = len(data)
        rng = self.headers.get("Range")
        if rng is not None and rng.startswith("bytes="):
            first, _, last = rng[len("bytes="):].partition("-")
            first = int(first)
            last = int(last) if last else size - 1
            if first >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[first : last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{first + len(body) - 1}/{size}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with LOCK:
            drop = DROPS.get(path, 0) > 0
            if drop:
                DROPS[path] -= 1
        if drop:
            # Promise the whole body, send a third of it, hang up.
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def git(self, path_info, query):
        body = self.read_body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ARGS.git_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        for header, var in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context):
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = context

    def get_request(self):
        sock, addr = self.socket.accept()
        return sock, addr

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's thread: a client that rejects the
        # certificate must not stall the others.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--git-root", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--drop", action="append", default=[],
                        help="break off the transfer of this path (once per occurrence)")
    ARGS = parser.parse_args()
    for path in ARGS.drop:
        DROPS[path] = DROPS.get(path, 0) + 1
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ARGS.cert, ARGS.key)
    server = Server(context)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
