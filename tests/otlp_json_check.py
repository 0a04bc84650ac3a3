"""Decodes OTLP/JSON lines (one export request per line) with the official
opentelemetry-proto package and protobuf's strict JSON parser: an
independent check that what dbintel writes is valid OTLP/JSON.

Reads stdin; prints one JSON summary line; exits non-zero on the first line
that does not parse."""
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

summary = {"requests": 0, "logs": 0, "metrics": 0, "points": 0, "delta_sums": 0, "resource_keys": []}
keys = set()
for number, line in enumerate(sys.stdin, 1):
    line = line.strip()
    if not line:
        continue
    try:
        shape = json.loads(line)
        if "resourceLogs" in shape:
            request = json_format.Parse(line, ExportLogsServiceRequest())
            for rl in request.resource_logs:
                keys.update(a.key for a in rl.resource.attributes)
                summary["logs"] += sum(len(sl.log_records) for sl in rl.scope_logs)
        elif "resourceMetrics" in shape:
            request = json_format.Parse(line, ExportMetricsServiceRequest())
            for rm in request.resource_metrics:
                keys.update(a.key for a in rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        summary["metrics"] += 1
                        kind = metric.WhichOneof("data")
                        data = getattr(metric, kind)
                        summary["points"] += len(data.data_points)
                        if kind == "sum" and data.aggregation_temporality == 1:
                            summary["delta_sums"] += 1
        else:
            raise ValueError("neither resourceLogs nor resourceMetrics")
    except Exception as error:  # report which line, then fail
        print(f"line {number}: {error}", file=sys.stderr)
        sys.exit(1)
    summary["requests"] += 1
summary["resource_keys"] = sorted(keys)
print(json.dumps(summary))
