"""The Python connector on the same work as benches/fakesnow.rs, timed the same way.

Usage: python compare.py PORT NDJSON_FILE ROUNDS. Prints one JSON object with the best times.
"""
import json, sys, time
import snowflake.connector

port, ndjson, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = snowflake.connector.connect(user="u", password="p", account="fakesnow", host="127.0.0.1", port=port,
                                   protocol="http", database="BENCH", schema="RAW")
cur = conn.cursor()
select_sql = open(sys.argv[4]).read()
select, load = [], []
for i in range(rounds):
    t = time.perf_counter()
    cur.execute(select_sql)
    rows = cur.fetchall()
    select.append(time.perf_counter() - t)
    assert len(rows) == 100_000, len(rows)
    cur.execute(f"CREATE OR REPLACE TABLE py_events_{i} (event VARIANT)")
    cur.execute(f"CREATE OR REPLACE STAGE py_stage_{i}")
    t = time.perf_counter()
    cur.execute(f"PUT file://{ndjson} @py_stage_{i}")
    cur.execute(f"COPY INTO py_events_{i} FROM @py_stage_{i} FILE_FORMAT = (TYPE = JSON)")
    cur.execute(f"SELECT COUNT(*) FROM py_events_{i}")
    n = cur.fetchone()[0]
    load.append(time.perf_counter() - t)
    assert n == 100_000, n
print(json.dumps({"select_s": min(select), "load_s": min(load)}))
