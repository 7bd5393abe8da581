"""recloop vs DuckDB on the same exposure/event logs (optional; needs a venv with duckdb).

Not run by CI. See duckdb_side_by_side.sh for the set-up; this file does the work:

  gen DATA_DIR [EVENTS] [UNITS]   write the log with DuckDB in three shapes:
                                  DATA_DIR/parquet (one file per table, DuckDB defaults),
                                  DATA_DIR/csv, DATA_DIR/daily (events/day=N/*.parquet)
  run DATA_DIR RECLOOP [RUNS]     time whole processes (median of RUNS) and compare numbers
"""

import json
import os
import statistics
import subprocess
import sys
import time

SQL = """
WITH x AS (
  SELECT unit_id, min(arm) AS arm, max(arm) AS arm2, min(ts) AS first_ts
  FROM {exposures} WHERE experiment = 'exp' GROUP BY unit_id
), u AS (
  SELECT x.unit_id, x.arm, coalesce(sum(e.value), 0) AS y
  FROM x LEFT JOIN (SELECT unit_id, ts, value FROM {events} WHERE metric = 'click') e
    ON e.unit_id = x.unit_id AND e.ts >= x.first_ts
  WHERE x.arm = x.arm2
  GROUP BY x.unit_id, x.arm
)
SELECT arm, count(*)::DOUBLE AS n, sum(y) AS s, sum(y * y) AS ss FROM u GROUP BY arm ORDER BY arm
"""

SOURCES = {
    "parquet": ("read_parquet('{d}/exposures.parquet')", "read_parquet('{d}/events.parquet')"),
    "csv": ("read_csv('{d}/exposures.csv')", "read_csv('{d}/events.csv')"),
    "daily": (
        "read_parquet('{d}/exposures.parquet')",
        "read_parquet('{d}/events/*/*.parquet', hive_partitioning = true)",
    ),
}


def gen(data, events, units):
    import duckdb

    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    span = 14 * 86400
    con.execute(
        f"""
        CREATE TABLE exposures AS
        SELECT unit_id::UBIGINT AS unit_id, 'exp' AS experiment,
               CASE WHEN hash(unit_id) % 2 = 0 THEN 'control' ELSE 'treatment' END AS arm,
               (hash(unit_id * 7 + 1) % {span})::BIGINT AS ts,
               ((hash(unit_id * 7 + 1) % {span}) // 86400)::UINTEGER AS day
        FROM range({units}) t(unit_id)
        UNION ALL  -- 1% of units also saw the other arm (excluded by both tools)
        SELECT unit_id::UBIGINT, 'exp',
               CASE WHEN hash(unit_id) % 2 = 0 THEN 'treatment' ELSE 'control' END,
               (hash(unit_id * 7 + 1) % {span})::BIGINT + 5,
               (((hash(unit_id * 7 + 1) % {span}) + 5) // 86400)::UINTEGER
        FROM range({units}) t(unit_id) WHERE unit_id % 100 = 7
        """
    )
    con.execute(
        f"""
        CREATE TABLE events AS
        SELECT (floor(random() * {units}))::UBIGINT AS unit_id,
               t::BIGINT AS ts, (t // 86400)::UINTEGER AS day,
               'click' AS metric, (1 + floor(random() * 5))::DOUBLE AS value
        FROM (SELECT floor(random() * {span}) AS t FROM range({events}))
        """
    )
    for shape in ("parquet", "csv", "daily"):
        os.makedirs(f"{data}/{shape}", exist_ok=True)
    con.execute(f"COPY exposures TO '{data}/parquet/exposures.parquet' (FORMAT parquet)")
    con.execute(f"COPY events TO '{data}/parquet/events.parquet' (FORMAT parquet)")
    con.execute(f"COPY exposures TO '{data}/csv/exposures.csv' (FORMAT csv, HEADER)")
    con.execute(f"COPY events TO '{data}/csv/events.csv' (FORMAT csv, HEADER)")
    con.execute(f"COPY exposures TO '{data}/daily/exposures.parquet' (FORMAT parquet)")
    con.execute(
        f"COPY events TO '{data}/daily/events' (FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)"
    )


def duck_cmd(data, shape, threads):
    x, e = SOURCES[shape]
    sql = SQL.format(exposures=x.format(d=f"{data}/{shape}"), events=e.format(d=f"{data}/{shape}"))
    code = (
        "import duckdb, json\n"
        f"con = duckdb.connect(config={{'threads': {threads}}})\n"
        "con.execute('SET enable_progress_bar = false')\n"
        f"rows = con.execute({sql!r}).fetchall()\n"
        "print(json.dumps([[a, n.hex(), s.hex(), ss.hex()] for a, n, s, ss in rows]))\n"
    )
    return [sys.executable, "-c", code]


def timed(cmd, env=None):
    t = time.perf_counter()
    r0 = os.times()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    wall = time.perf_counter() - t
    r1 = os.times()
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return out, wall, cpu


def recloop_numbers(out):
    agg = json.loads(out)
    rows = []
    for m in agg["metrics"]:
        s = m["summary"]
        rows.append([m["arm"], float(s["n"]).hex(), float(s["sum"]).hex(), float(s["sum_squares"]).hex()])
    return rows


def run(data, recloop, runs):
    threads = os.cpu_count() or 1
    print(f"{'shape':<8} {'tool':<22} {'wall s (median)':>16} {'cpu s':>7}  numbers")
    for shape in ("parquet", "csv", "daily"):
        results = {}
        for tool, cmd in (
            (f"duckdb python {threads}t", duck_cmd(data, shape, threads)),
            ("duckdb python 1t", duck_cmd(data, shape, 1)),
            (f"recloop {threads}t", [recloop, "stats", "aggregate", f"{data}/{shape}", "--mean", "click"]),
            ("recloop 1t", [recloop, "stats", "aggregate", f"{data}/{shape}", "--mean", "click", "--threads", "1"]),
        ):
            walls, cpus, out = [], [], ""
            subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
            for _ in range(runs):
                out, wall, cpu = timed(cmd)
                walls.append(wall)
                cpus.append(cpu)
            nums = recloop_numbers(out) if tool.startswith("recloop") else json.loads(out)
            results[tool] = (statistics.median(walls), statistics.median(cpus), nums)
            print(f"{shape:<8} {tool:<22} {statistics.median(walls):>16.3f} {statistics.median(cpus):>7.3f}  {nums}")
        duck = results[f"duckdb python {threads}t"]
        ours = results[f"recloop {threads}t"]
        same = all(r[2] == duck[2] for r in results.values())
        print(f"{shape:<8} recloop/duckdb wall = {ours[0] / duck[0]:.2f}x; identical numbers: {same}")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(float(sys.argv[3])) if len(sys.argv) > 3 else 10_000_000,
            int(float(sys.argv[4])) if len(sys.argv) > 4 else 100_000)
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 5)
    else:
        sys.exit(__doc__)
