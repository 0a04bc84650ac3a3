#!/usr/bin/env python3
"""FAKE Kubernetes API server for dbintel's tests: only the
coordination.k8s.io/v1 Lease endpoints (get, list, create, replace),
in memory. Like the real server it sets metadata.resourceVersion on every
write, answers a replace carrying a stale resourceVersion with 409
Conflict, a create of an existing name with 409 AlreadyExists, and errors
as Status objects. No Kubernetes API server can run on our machines; this
is the most faithful stand-in we have, and tests using it say so.

Prints {"port": N} once listening. POST /fake/partition?who=POD blocks
requests whose bearer token is POD (each replica's kubeconfig carries its
pod name as token); /fake/heal?who=POD lifts it. GET /fake/history lists
every write it accepted, in order, with the server's own time of it
(`t`, Unix seconds): who wrote, which lease, the holder it names and the
lease's duration and renewTime as written — so a test can set what
replicas did against when the lease changed hands.
"""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

LOCK = threading.Lock()
LEASES = {}  # (namespace, name) -> object
VERSION = [0]
BLOCKED = set()
HISTORY = []  # accepted writes, in order
PATH = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?$")


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def who(self):
        return self.headers.get("Authorization", "").removeprefix("Bearer ").strip()

    def handle_any(self, method):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        if url.path == "/fake/history":
            with LOCK:
                return self.send(200, list(HISTORY))
        if url.path.startswith("/fake/"):
            who = parse_qs(url.query).get("who", [""])[0]
            with LOCK:
                (BLOCKED.add if url.path == "/fake/partition" else BLOCKED.discard)(who)
            return self.send(200, {})
        if self.who() in BLOCKED:
            # a partition: the connection just dies
            self.close_connection = True
            return self.connection.close()
        m = PATH.match(url.path)
        if not m:
            return self.send(*status(404, "NotFound", f"no route {url.path}"))
        ns, name = m.group(1), m.group(2)
        with LOCK:
            code, out = self.route(method, ns, name, body, parse_qs(url.query))
            if method in ("POST", "PUT") and code in (200, 201):
                spec = out.get("spec") or {}
                HISTORY.append({"t": time.time(), "who": self.who(), "method": method, "lease": out["metadata"]["name"],
                                "holder": spec.get("holderIdentity"), "durationSeconds": spec.get("leaseDurationSeconds"),
                                "renewTime": spec.get("renewTime"), "resourceVersion": out["metadata"]["resourceVersion"]})
        self.send(code, out)

    def route(self, method, ns, name, body, query):
        if method == "GET" and name is None:
            selector = query.get("labelSelector", [""])[0]
            items = [o for (n, _), o in sorted(LEASES.items()) if n == ns and matches(o, selector)]
            return 200, {"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList",
                         "metadata": {"resourceVersion": str(VERSION[0])}, "items": items}
        if method == "GET":
            obj = LEASES.get((ns, name))
            return (200, obj) if obj else status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        if method == "POST":
            name = body["metadata"]["name"]
            if (ns, name) in LEASES:
                return status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
            return 201, self.store(ns, name, body)
        if method == "PUT":
            current = LEASES.get((ns, name))
            if current is None:
                return status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again")
            return 200, self.store(ns, name, body)
        return status(405, "MethodNotAllowed", method)

    def store(self, ns, name, body):
        VERSION[0] += 1
        body = dict(body)
        body["apiVersion"] = "coordination.k8s.io/v1"
        body["kind"] = "Lease"
        meta = dict(body.get("metadata") or {})
        meta.update({"name": name, "namespace": ns, "resourceVersion": str(VERSION[0])})
        body["metadata"] = meta
        LEASES[(ns, name)] = body
        return body

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")


def matches(obj, selector):
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
