#!/usr/bin/env python3
"""An OTLP receiver for dbintel's tests, built on the official
opentelemetry-proto package and grpcio (nothing of ours decodes here).

Listens for OTLP over gRPC and HTTP/protobuf, decodes every request with
the official generated classes (strict: a request that does not parse is
answered 400 / INVALID_ARGUMENT and recorded as such), and appends one JSON
line per request to --out:

  {"t": unix time, "transport": "grpc"|"http", "signal": "metrics"|"logs",
   "encoding": "gzip"|"zstd"|"identity", "bytes": decoded size,
   "wire_bytes": the body as received (HTTP only), "resources": how many
   ResourceMetrics / ResourceLogs the request carries,
   "api_key": the api-key header, "answer": "ok" or the refusal,
   "request": the request as protobuf JSON (only when answered ok;
   with --count-only "items": the number of points / log records instead)}

--script is a JSON list of answers used one per request, in order, before
answering ok: {"http": 429, "retry_after": "2"}, {"http": 400},
{"grpc": "UNAVAILABLE", "retry_delay": 1.5}, {"grpc": "INVALID_ARGUMENT"},
{"partial": 3, "message": "..."} (accepted, with a partial-success
response saying 3 items were rejected).

What went over the wire for gRPC is recorded too, in --out + ".calls":
one line per call, {"t", "stream", "wire": "identity"|"gzip"|"zstd"|
"compressed-unknown"}, read from the bytes themselves (the message's
compressed flag, then the gzip or zstd magic number) by a pass-through
TCP proxy in front of grpcio. gRPC's C core strips grpc-encoding from the
metadata a handler sees, and never calls the handler for an encoding it
refuses, so this is how a test sees what a refused call carried. The
proxy is off with --count-only (benchmarks) and with TLS.

Prints {"grpc": port, "http": port} on stdout once listening.
"""
import argparse
import gzip
import json
import socket
import struct
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import zstandard
from google.protobuf import duration_pb2
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

LOCK = threading.Lock()
SCRIPT = []
OUT = None
CALLS = None
COUNT_ONLY = False


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def wire_encoding(head):
    """A gRPC message's first bytes: compressed flag, length, payload."""
    if head[0] == 0:
        return "identity"
    if head[5:7] == b"\x1f\x8b":
        return "gzip"
    if head[5:9] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "compressed-unknown"


class WireLog:
    """Reads HTTP/2 frames from the client's side of a connection and
    records each stream's first gRPC message's encoding."""

    def __init__(self):
        self.buf = b""
        self.preface = False
        self.streams = {}
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
            head = self.streams.get(stream, b"") + payload
            if len(head) < 9:
                self.streams[stream] = head
                continue
            self.streams.pop(stream, None)
            self.done.add(stream)
            with LOCK:
                CALLS.write(json.dumps({"t": time.time(), "stream": stream, "wire": wire_encoding(head)}) + "\n")
                CALLS.flush()


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
                    print(f"wire log: {e}", file=sys.stderr)
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
    """A pass-through TCP proxy to grpcio on `backend` that logs the wire."""
    listener = socket.create_server(("127.0.0.1", port))

    def accept():
        while True:
            client, _ = listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", backend))
            except OSError:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, server, WireLog()), daemon=True).start()
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


def response_for(signal, answer):
    if signal == "metrics":
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if answer and "partial" in answer:
            response.partial_success.rejected_data_points = answer["partial"]
            response.partial_success.error_message = answer.get("message", "")
    else:
        response = logs_service_pb2.ExportLogsServiceResponse()
        if answer and "partial" in answer:
            response.partial_success.rejected_log_records = answer["partial"]
            response.partial_success.error_message = answer.get("message", "")
    return response


def resources(signal, msg):
    return len(msg.resource_logs) if signal == "logs" else len(msg.resource_metrics)


def recorded(signal, msg):
    """The request for the record: all of it, or (--count-only) its size."""
    if COUNT_ONLY:
        return {"items": items(signal, msg), "resources": resources(signal, msg)}
    return {"request": MessageToDict(msg), "resources": resources(signal, msg)}


def next_answer():
    with LOCK:
        return SCRIPT.pop(0) if SCRIPT else None


def record(entry):
    entry["t"] = time.time()
    with LOCK:
        OUT.write(json.dumps(entry) + "\n")
        OUT.flush()


def decode(signal, data):
    cls = metrics_service_pb2.ExportMetricsServiceRequest if signal == "metrics" else logs_service_pb2.ExportLogsServiceRequest
    msg = cls()
    msg.ParseFromString(data)
    return msg


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(tag, data):
    return varint(tag << 3 | 2) + varint(len(data)) + data


def status_with_retry_info(code, message, delay):
    """google.rpc.Status{code, message, details: [Any(RetryInfo)]}, by hand."""
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(delay * 1e9))
    retry_info = field(1, d.SerializeToString())
    any_msg = field(1, b"type.googleapis.com/google.rpc.RetryInfo") + field(2, retry_info)
    return varint(1 << 3 | 0) + varint(code) + field(2, message.encode()) + field(3, any_msg)


class Grpc:
    def __init__(self, signal):
        self.signal = signal

    def Export(self, request, context):
        meta = dict(context.invocation_metadata())
        entry = {"transport": "grpc", "signal": self.signal, "encoding": meta.get("grpc-encoding", "identity"),
                 "bytes": request.ByteSize(), "api_key": meta.get("api-key")}
        answer = next_answer()
        if answer and "grpc" in answer:
            code = getattr(grpc.StatusCode, answer["grpc"])
            entry["answer"] = answer["grpc"]
            record(entry)
            if "retry_delay" in answer:
                details = status_with_retry_info(code.value[0], "slow down", answer["retry_delay"])
                context.set_trailing_metadata((("grpc-status-details-bin", details),))
            context.abort(code, "scripted refusal")
        entry["answer"] = "ok"
        entry.update(recorded(self.signal, request))
        record(entry)
        return response_for(self.signal, answer)


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        signal = {"/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if signal is None:
            return self.reply(404)
        encoding = self.headers.get("Content-Encoding", "identity")
        entry = {"transport": "http", "signal": signal, "encoding": encoding, "api_key": self.headers.get("api-key"),
                 "wire_bytes": len(body)}
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "zstd":
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=64 << 20)
            msg = decode(signal, body)
        except Exception as e:  # a request the official classes refuse
            entry["answer"] = f"undecodable: {e}"
            record(entry)
            return self.reply(400, b"undecodable")
        entry["bytes"] = len(body)
        answer = next_answer()
        if answer and "http" in answer:
            entry["answer"] = answer["http"]
            record(entry)
            headers = [("Retry-After", answer["retry_after"])] if "retry_after" in answer else []
            return self.reply(answer["http"], b"scripted refusal", headers)
        entry["answer"] = "ok"
        entry.update(recorded(signal, msg))
        record(entry)
        self.reply(200, response_for(signal, answer).SerializeToString())


def main():
    global OUT
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", type=int, default=0)
    parser.add_argument("--http", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--script", default="[]")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM) and --tls-key")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mutual TLS)")
    parser.add_argument("--count-only", action="store_true", help="record item counts, not the requests (benchmarks)")
    args = parser.parse_args()
    global COUNT_ONLY
    COUNT_ONLY = args.count_only
    SCRIPT.extend(json.loads(args.script))
    OUT = open(args.out, "a", encoding="utf-8")
    global CALLS
    CALLS = open(args.out + ".calls", "a", encoding="utf-8")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 8 << 20)])
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Grpc("metrics"), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Grpc("logs"), server)
    if args.tls_cert:
        with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
            client_ca = open(args.tls_client_ca, "rb").read() if args.tls_client_ca else None
            credentials = grpc.ssl_server_credentials([(k.read(), c.read())], root_certificates=client_ca,
                                                      require_client_auth=client_ca is not None)
        grpc_port = server.add_secure_port(f"127.0.0.1:{args.grpc}", credentials)
    elif args.count_only:
        grpc_port = server.add_insecure_port(f"127.0.0.1:{args.grpc}")
    else:
        # grpcio behind the wire-logging proxy, which takes the asked port
        backend = server.add_insecure_port("127.0.0.1:0")
        grpc_port = proxy(args.grpc, backend)
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", args.http), Http)
    if args.tls_cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.tls_client_ca)
        http.socket = context.wrap_socket(http.socket, server_side=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(json.dumps({"grpc": grpc_port, "http": http.server_address[1]}), flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
