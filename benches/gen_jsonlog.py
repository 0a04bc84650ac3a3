#!/usr/bin/env python3
"""A PostgreSQL 15 jsonlog file of a busy server, for benches/logs_1g.sh.

  benches/gen_jsonlog.py BYTES > postgresql.json

Seeded (the same file every time). The mix, by lines: half errors and
warnings carrying PII where servers put it (unique-violation DETAILs,
type errors quoting input, bind parameters in CONTEXT, the STATEMENT),
a quarter LOG lines no collector keeps (connections, disconnections,
statement durations), and the rest auto_explain JSON plans, lock waits,
temporary files, cancellations, autovacuum runs and checkpoints."""
import json
import random
import sys

rng = random.Random(0x10C5)
target = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30
out = sys.stdout
written = 0
line_no = 0


def base(severity, state, message, **extra):
    global line_no
    line_no += 1
    pid = 4000 + rng.randrange(200)
    d = {
        "timestamp": "2024-05-01 12:%02d:%02d.%03d UTC" % (rng.randrange(60), rng.randrange(60), rng.randrange(1000)),
        "user": rng.choice(["app", "reporting", "jane.doe@example.com"]),
        "dbname": rng.choice(["shop", "billing"]),
        "pid": pid,
        "remote_host": "10.0.%d.%d" % (rng.randrange(255), rng.randrange(255)),
        "remote_port": 40000 + rng.randrange(20000),
        "session_id": "66323c1a.%x" % pid,
        "line_num": line_no,
        "ps": "idle",
        "session_start": "2024-05-01 12:00:00 UTC",
        "vxid": "3/%d" % line_no,
        "txid": 0,
        "error_severity": severity,
        "state_code": state,
        "message": message,
        "application_name": rng.choice(["psql", "rails", "worker"]),
        "backend_type": "client backend",
        "query_id": rng.randrange(-2**62, 2**62),
    }
    d.update(extra)
    return d


def email():
    return "%s.%s%d@example.com" % (rng.choice(["ann", "bob", "li", "zeb"]), rng.choice(["smith", "quixote", "ng"]), rng.randrange(10**6))


def card():
    return "4111 %04d %04d %04d" % (rng.randrange(10**4), rng.randrange(10**4), rng.randrange(10**4))


def entry():
    r = rng.random()
    if r < 0.20:
        e = email()
        return base("ERROR", "23505", 'duplicate key value violates unique constraint "users_email_key"',
                    detail="Key (email)=(%s) already exists." % e,
                    statement="INSERT INTO users (email, name, created_at) VALUES ('%s', 'Ann Smith', now()) RETURNING id" % e)
    if r < 0.35:
        c = card()
        return base("ERROR", "22P02", 'invalid input syntax for type integer: "%s"' % c,
                    statement="SELECT * FROM payments WHERE card_number = '%s'::integer AND amount > 100" % c)
    if r < 0.45:
        return base("ERROR", "57014", "canceling statement due to statement timeout",
                    context="unnamed portal with parameters: $1 = '%s', $2 = '%d'" % (email(), rng.randrange(10**6)),
                    statement="SELECT o.* FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email = $1 AND o.id > $2")
    if r < 0.50:
        return base("WARNING", "25P01", "there is no transaction in progress")
    if r < 0.75:
        return base("LOG", "00000", rng.choice([
            "connection authorized: user=app database=shop application_name=rails",
            "disconnection: session time: 0:00:01.234 user=app database=shop host=10.0.0.1 port=5432",
            "duration: %.3f ms  statement: SELECT * FROM users WHERE email = '%s'" % (rng.random() * 10, email()),
        ]))
    if r < 0.85:
        e = email()
        plan = {"Query Text": "SELECT * FROM users WHERE email = '%s'" % e, "Plan": {
            "Node Type": "Index Scan", "Parallel Aware": False, "Scan Direction": "Forward", "Index Name": "users_email_key",
            "Relation Name": "users", "Alias": "users", "Startup Cost": 0.29, "Total Cost": 8.31, "Plan Rows": 1, "Plan Width": 72,
            "Actual Rows": 1, "Actual Loops": 1, "Output": ["id", "email", "name"],
            "Index Cond": "((users.email)::text = '%s'::text)" % e, "Rows Removed by Index Recheck": 0}}
        return base("LOG", "00000", "duration: %.3f ms  plan:\n%s" % (rng.random() * 100, json.dumps(plan, indent=2)))
    if r < 0.90:
        return base("LOG", "00000", "process %d still waiting for ShareLock on transaction %d after 1000.%03d ms" % (4000 + rng.randrange(200), rng.randrange(10**6), rng.randrange(1000)),
                    detail="Process holding the lock: %d. Wait queue: %d." % (4000 + rng.randrange(200), 4000 + rng.randrange(200)),
                    statement="UPDATE accounts SET balance = balance - 100 WHERE id = %d" % rng.randrange(10**6))
    if r < 0.95:
        return base("LOG", "00000", 'temporary file: path "base/pgsql_tmp/pgsql_tmp%d.0", size %d' % (rng.randrange(10**5), rng.randrange(10**8)),
                    statement="SELECT * FROM events ORDER BY created_at DESC")
    if r < 0.98:
        t = rng.choice(["orders", "users", "events", "payments"])
        return base("LOG", "00000", ('automatic vacuum of table "shop.public.%s": index scans: 1\npages: 0 removed, 55 remain, 55 scanned (100.00%% of total)\n'
                    'tuples: %d removed, 4000 remain, 7 are dead but not yet removable\nremovable cutoff: 760, which was 0 XIDs old when operation ended\n'
                    'buffer usage: 180 hits, 0 misses, 12 dirtied\nWAL usage: 130 records, 10 full page images, 85310 bytes\n'
                    'system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.02 s') % (t, rng.randrange(10**4)), backend_type="autovacuum worker")
    return base("LOG", "00000", "checkpoint complete: wrote %d buffers (0.0%%); 0 WAL file(s) added, 0 removed, 1 recycled; write=0.101 s, sync=0.002 s, total=0.110 s; "
                "sync files=2, longest=0.001 s, average=0.001 s; distance=%d kB, estimate=16384 kB" % (rng.randrange(10**4), rng.randrange(10**5)), backend_type="checkpointer")


lines = 0
while written < target:
    text = json.dumps(entry(), separators=(",", ":")) + "\n"
    out.write(text)
    written += len(text)
    lines += 1
print(lines, file=sys.stderr)
