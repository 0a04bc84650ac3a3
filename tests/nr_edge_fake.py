#!/usr/bin/env python3
"""A FAKE of New Relic's OTLP edge, for dbintel's delivery tests: no real
New Relic endpoint can run here, so this one behaves as New Relic's own
documents say its endpoint does (docs.newrelic.com, "New Relic OTLP
endpoint" payload and attribute limits, "OTLP troubleshooting", "Metric
API limits"), built on the official opentelemetry-proto classes and grpcio
(nothing of dbintel's decodes here).

What it does, on both protocols:
  - success: HTTP 200 with an EMPTY body (New Relic sends no OTLP response
    message, so no partial success, ever); gRPC an empty response;
  - a request over --max-bytes (default 1,000,000) AS SENT, i.e. compressed:
    HTTP 413; gRPC RESOURCE_EXHAUSTED "grpc: received message larger than
    max (N vs. M)" (what a gRPC server says; New Relic does not document
    its gRPC answer);
  - throttling: HTTP 429 with Retry-After; gRPC RESOURCE_EXHAUSTED "Too many
    requests" WITHOUT RetryInfo (as the troubleshooting page shows);
  - transient faults of its networking vendor: HTTP 500/530; over gRPC the
    client sees UNKNOWN "unexpected HTTP status code received from server:
    500 (Internal Server Error)" (or 530), or INTERNAL with no message;
  - no api-key (with --api-key): 401 / UNAUTHENTICATED; a wrong one: 403 /
    PERMISSION_DENIED.

Answers other than success come from a script (--script, a JSON list used
one entry per request, in order) or from a throttling burst started at run
time with GET /fake/throttle?seconds=S&retry_after=R on the HTTP port (every
request on either protocol is throttled for S seconds). Script entries:
  "ok" | {"throttle": true, "retry_after": "2"} | {"transient": 500|530}
  | {"internal": true} | {"status": 400} | {"redirect": "http://…"}
  | {"body_bytes": N} (a 200 whose body is N bytes; records how many were
  written before the client stopped reading).

One JSON line per request in --out:
  {"t", "transport", "signal", "encoding", "sent_bytes" (as sent),
   "raw_bytes", "items", "resources", "answer", "api_key",
   "request" (protobuf JSON, answered ok, with --keep)}
gRPC sizes as sent are read by a pass-through TCP proxy in front of grpcio
from each call's message header (grpcio's handler only sees the decoded
message), matched to the call by the proxy's connection.

Prints {"grpc": port, "http": port} on stdout once listening.
"""
import argparse
import collections
import gzip
import json
import socket
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import grpc
import zstandard
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

LOCK = threading.Lock()
SCRIPT = []
OUT = None
KEEP = False
MAX_BYTES = 1_000_000
API_KEY = None
THROTTLE = {"until": 0.0, "retry_after": "1"}
# proxy connection (its local port towards grpcio) -> wire sizes of calls
WIRE = collections.defaultdict(collections.deque)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class WireSizes:
    """Reads the client's HTTP/2 frames and records, per stream, the length
    of its first gRPC message as sent (the 4 bytes after the compressed
    flag)."""

    def __init__(self, key):
        self.key = key
        self.buf = b""
        self.preface = False
        self.partial = {}
        self.done = set()

    def feed(self, data):
        self.buf += data
        if not self.preface:
            if len(self.buf) < len(PREFACE):
                return
            self.buf = self.buf[len(PREFACE):]
            self.preface = True
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if kind != 0 or stream in self.done:
                continue
            if flags & 0x8 and payload:  # padded
                payload = payload[1:len(payload) - payload[0]]
            head = self.partial.get(stream, b"") + payload
            if len(head) < 5:
                self.partial[stream] = head
                continue
            self.partial.pop(stream, None)
            self.done.add(stream)
            with LOCK:
                WIRE[self.key].append(int.from_bytes(head[1:5], "big"))


def pipe(src, dst, log=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if log is not None:
                try:
                    log.feed(data)
                except Exception as e:  # the log must never stop the bytes
                    print(f"wire sizes: {e}", file=sys.stderr)
                    log = None
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(port, backend):
    listener = socket.create_server(("127.0.0.1", port))

    def accept():
        while True:
            client, _ = listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", backend))
            except OSError:
                client.close()
                continue
            key = server.getsockname()[1]
            threading.Thread(target=pipe, args=(client, server, WireSizes(key)), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def items(signal, msg):
    if signal == "logs":
        return sum(len(s.log_records) for r in msg.resource_logs for s in r.scope_logs)
    n = 0
    for r in msg.resource_metrics:
        for s in r.scope_metrics:
            for m in s.metrics:
                n += len(m.gauge.data_points) + len(m.sum.data_points)
    return n


def resources(signal, msg):
    return len(msg.resource_logs) if signal == "logs" else len(msg.resource_metrics)


def decode(signal, data):
    cls = metrics_service_pb2.ExportMetricsServiceRequest if signal == "metrics" else logs_service_pb2.ExportLogsServiceRequest
    msg = cls()
    msg.ParseFromString(data)
    return msg


def next_answer():
    """The script's next entry, or a throttle while a burst lasts."""
    with LOCK:
        if time.time() < THROTTLE["until"]:
            return {"throttle": True, "retry_after": THROTTLE["retry_after"], "burst": True}
        return SCRIPT.pop(0) if SCRIPT else "ok"


def record(entry):
    entry["t"] = time.time()
    with LOCK:
        OUT.write(json.dumps(entry) + "\n")
        OUT.flush()


def accepted(entry, signal, msg):
    entry["answer"] = "ok"
    entry["items"] = items(signal, msg)
    entry["resources"] = resources(signal, msg)
    if KEEP:
        entry["request"] = MessageToDict(msg)
    record(entry)


class Grpc:
    def __init__(self, signal):
        self.signal = signal

    def Export(self, request, context):
        meta = dict(context.invocation_metadata())
        raw = request.ByteSize()
        sent = raw
        peer = context.peer()  # ipv4:127.0.0.1:PORT, the proxy's side
        try:
            port = int(peer.rsplit(":", 1)[1])
            with LOCK:
                if WIRE[port]:
                    sent = WIRE[port].popleft()
        except (ValueError, IndexError):
            pass
        entry = {"transport": "grpc", "signal": self.signal, "encoding": meta.get("grpc-encoding", "?"),
                 "sent_bytes": sent, "raw_bytes": raw, "api_key": meta.get("api-key")}
        if API_KEY is not None and meta.get("api-key") != API_KEY:
            code = grpc.StatusCode.UNAUTHENTICATED if meta.get("api-key") is None else grpc.StatusCode.PERMISSION_DENIED
            entry["answer"] = code.name
            record(entry)
            context.abort(code, "")
        if sent > MAX_BYTES:
            entry["answer"] = "too_large"
            record(entry)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({sent} vs. {MAX_BYTES})")
        answer = next_answer()
        if answer == "ok" or "body_bytes" in answer:
            accepted(entry, self.signal, request)
            return (metrics_service_pb2.ExportMetricsServiceResponse() if self.signal == "metrics"
                    else logs_service_pb2.ExportLogsServiceResponse())
        if answer.get("throttle"):
            entry["answer"] = "throttled"
            record(entry)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many requests")
        if "transient" in answer:
            status = answer["transient"]
            entry["answer"] = f"transient {status}"
            record(entry)
            reason = "500 (Internal Server Error); malformed header: missing HTTP content-type" if status == 500 else \
                f'{status} (); transport: received unexpected content-type "text/html; charset=UTF-8"'
            context.abort(grpc.StatusCode.UNKNOWN, f"unexpected HTTP status code received from server: {reason}")
        if answer.get("internal"):
            entry["answer"] = "internal"
            record(entry)
            context.abort(grpc.StatusCode.INTERNAL, "")
        status = answer.get("status", 400)
        code = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
                403: grpc.StatusCode.PERMISSION_DENIED}.get(status, grpc.StatusCode.INVALID_ARGUMENT)
        entry["answer"] = code.name
        record(entry)
        context.abort(code, "")


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/fake/throttle":
            return self.reply(404)
        q = parse_qs(url.query)
        with LOCK:
            THROTTLE["until"] = time.time() + float(q.get("seconds", ["5"])[0])
            THROTTLE["retry_after"] = q.get("retry_after", ["1"])[0]
        self.reply(200, b"throttling")

    def do_POST(self):
        signal = {"/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if signal is None:
            return self.reply(404)
        encoding = self.headers.get("Content-Encoding", "identity")
        key = self.headers.get("api-key")
        entry = {"transport": "http", "signal": signal, "encoding": encoding, "sent_bytes": len(body), "api_key": key}
        if API_KEY is not None and key != API_KEY:
            entry["answer"] = 401 if key is None else 403
            record(entry)
            return self.reply(entry["answer"])
        if len(body) > MAX_BYTES:
            entry["answer"] = 413
            record(entry)
            return self.reply(413)
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "zstd":
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=64 << 20)
            elif encoding != "identity":
                entry["answer"] = 415
                record(entry)
                return self.reply(415)
            msg = decode(signal, body)
        except Exception as e:
            entry["answer"] = f"undecodable: {e}"
            record(entry)
            return self.reply(400)
        entry["raw_bytes"] = len(body)
        answer = next_answer()
        if answer == "ok":
            accepted(entry, signal, msg)
            return self.reply(200)
        if "body_bytes" in answer:
            accepted(entry, signal, msg)
            return self.huge(answer["body_bytes"])
        if answer.get("throttle"):
            entry["answer"] = 429
            record(entry)
            return self.reply(429, b"", [("Retry-After", str(answer.get("retry_after", "1")))])
        if "transient" in answer:
            entry["answer"] = answer["transient"]
            record(entry)
            return self.reply(answer["transient"], b"<html>error</html>", [("Content-Type", "text/html")])
        if answer.get("internal"):
            entry["answer"] = 500
            record(entry)
            return self.reply(500)
        if "redirect" in answer:
            entry["answer"] = 307
            record(entry)
            return self.reply(307, b"", [("Location", answer["redirect"])])
        entry["answer"] = answer.get("status", 400)
        record(entry)
        return self.reply(entry["answer"])

    def huge(self, n):
        """A 200 whose body is n bytes; records how many went out before
        the client stopped reading."""
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        written, chunk = 0, b"x" * 65536
        try:
            while written < n:
                self.wfile.write(chunk[:min(len(chunk), n - written)])
                written += min(len(chunk), n - written)
        except OSError:
            pass
        record({"transport": "http", "answer": "body", "body_bytes": n, "body_written": written})


def main():
    global OUT, KEEP, MAX_BYTES, API_KEY
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", type=int, default=0)
    parser.add_argument("--http", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--script", default="[]")
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--api-key", help="require this api-key header (401/403 otherwise)")
    parser.add_argument("--keep", action="store_true", help="record each accepted request as protobuf JSON")
    args = parser.parse_args()
    SCRIPT.extend(json.loads(args.script))
    OUT = open(args.out, "a", encoding="utf-8")
    KEEP, MAX_BYTES, API_KEY = args.keep, args.max_bytes, args.api_key

    # grpcio takes more than New Relic does: the size check is ours, as sent
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 64 << 20)])
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Grpc("metrics"), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Grpc("logs"), server)
    backend = server.add_insecure_port("127.0.0.1:0")
    grpc_port = proxy(args.grpc, backend)
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", args.http), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(json.dumps({"grpc": grpc_port, "http": http.server_address[1]}), flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
