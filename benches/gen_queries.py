"""Writes N NDJSON rows with a realistic query text each, a fifth of them
carrying PII of some kind. Deterministic (seeded).
    python3 benches/gen_queries.py 200000 > rows.ndjson"""
import json, random, sys

random.seed(42)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
tables = ["users", "orders", "accounts", "sessions", "events", "invoices", "audit_log"]
pii = [
    lambda: f"'{random.choice(['ann','bob','cy'])}{random.randint(1,999)}@example{random.randint(1,50)}.com'",
    lambda: f"'{random.randint(100,665)}-{random.randint(10,99)}-{random.randint(1000,9999)}'",
    lambda: "'4111 1111 1111 1111'",
    lambda: f"'+1 555-{random.randint(100,999)}-{random.randint(1000,9999)}'",
    lambda: f"'10.{random.randint(0,255)}.{random.randint(0,255)}.{random.randint(1,254)}'",
    lambda: "'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk'",
    lambda: f"'sk_live_{''.join(random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(24))}'",
]
for i in range(n):
    t = random.choice(tables)
    shape = random.randint(0, 4)
    if shape == 0:
        q = f"SELECT id, name, created_at FROM {t} WHERE id = {random.randint(1, 10**6)} AND status = 'active'"
    elif shape == 1:
        q = f"UPDATE {t} SET updated_at = now(), note = 'batch {i}' WHERE id IN ({', '.join(str(random.randint(1, 10**5)) for _ in range(5))})"
    elif shape == 2:
        q = f"INSERT INTO {t} (a, b, c) VALUES ({random.randint(1, 99)}, 'x{i}', {random.random():.4f})"
    elif shape == 3:
        q = f"SELECT count(*) FROM {t} t JOIN accounts a ON a.id = t.account_id WHERE t.created_at > now() - interval '1 day' GROUP BY a.region ORDER BY 1 DESC LIMIT 20"
    else:
        q = f"SELECT * FROM {t} WHERE contact = {random.choice(pii)()} -- lookup {i}"
    row = {"db.query.text": q, "db.user": random.choice(["app", "etl", "analyst"]), "db.namespace": "prod"}
    print(json.dumps(row))
