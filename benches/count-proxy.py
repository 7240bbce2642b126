#!/usr/bin/python3
"""A counting reverse proxy for benches/cloud-build.sh: one loopback port in
front of each OpenStack service of the playground, one line per request in a
log, so that two clients' API calls are counted the same way.

    count-proxy.py LOG LISTEN=TARGET [LISTEN=TARGET ...]

Each LISTEN port on 127.0.0.1 forwards to 127.0.0.1:TARGET. In JSON
responses (Keystone's catalog, Nova's and Glance's links) and Location
headers every "127.0.0.1:TARGET" becomes "127.0.0.1:LISTEN", so a client
that is given the proxied Keystone finds every other service through the
proxy too. Other bodies (image data) are streamed through unchanged.

Log lines: `<unix time> <target port> <METHOD> <path> <status>`.
Go's and Python's HTTP clients never use an HTTP proxy for loopback
addresses, hence a reverse proxy and not HTTP_PROXY. Runs until killed.
"""

import http.client
import http.server
import socketserver
import sys
import threading
import time

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
       "trailer", "upgrade", "content-length"}


def main():
    log_path = sys.argv[1]
    pairs = [tuple(int(p) for p in a.split("=")) for a in sys.argv[2:]]
    swaps = [(b"127.0.0.1:%d" % t, b"127.0.0.1:%d" % l) for l, t in pairs]
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def rewrite(data):
        for old, new in swaps:
            data = data.replace(old, new)
        return data

    def handler_for(target):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else None

            def forward(self):
                data = self.body()
                up = http.client.HTTPConnection("127.0.0.1", target, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                headers["Host"] = "127.0.0.1:%d" % target
                if data is not None:
                    headers["Content-Length"] = str(len(data))
                up.request(self.command, self.path, body=data, headers=headers)
                r = up.getresponse()
                with lock:
                    log.write("%.3f %d %s %s %d\n" % (time.time(), target, self.command,
                                                      self.path, r.status))
                kind = r.getheader("Content-Type", "")
                self.send_response_only(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() in HOP:
                        continue
                    if k.lower() == "location":
                        v = rewrite(v.encode()).decode()
                    self.send_header(k, v)
                if self.command == "HEAD" or r.status in (204, 304) or r.status < 200:
                    self.send_header("Content-Length", r.getheader("Content-Length", "0"))
                    self.end_headers()
                elif "json" in kind or "text" in kind:
                    payload = rewrite(r.read())
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    length = r.getheader("Content-Length")
                    if length is None:
                        self.send_header("Transfer-Encoding", "chunked")
                    else:
                        self.send_header("Content-Length", length)
                    self.end_headers()
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        if length is None:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        else:
                            self.wfile.write(chunk)
                    if length is None:
                        self.wfile.write(b"0\r\n\r\n")
                up.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward

        return Handler

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    servers = [Server(("127.0.0.1", l), handler_for(t)) for l, t in pairs]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
