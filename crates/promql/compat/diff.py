#!/usr/bin/env python3
"""Compares ember (the promql_eval example) with a Prometheus on 127.0.0.1:19092
serving the same data, query by query. Usage: diff.py QUERIES [PROMQL_EVAL_BINARY]"""
import json, subprocess, sys, urllib.parse, urllib.request
def fmt(v):
    if v != v: return "NaN"
    if v in (float('inf'), float('-inf')): return "inf" if v > 0 else "-inf"
    m, e = f"{v:.9e}".split('e')
    return f"{m}e{int(e)}"
def labels(m):
    return "{" + ", ".join(f'{k}="{m[k]}"' for k in sorted(m)) + "}"
def prom(t, q):
    url = "http://127.0.0.1:19092/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t})
    try:
        d = json.load(urllib.request.urlopen(url))
    except urllib.error.HTTPError as e:
        d = json.load(e)
    if d["status"] != "success":
        return "error: " + d["error"]
    r = d["data"]; rt = r["resultType"]; res = r["result"]
    if rt == "scalar": return "scalar " + fmt(float(res[1]))
    if rt == "string": return "string " + res[1]
    if rt == "vector":
        return "vector " + ";".join(sorted(f'{labels(s["metric"])}={fmt(float(s["value"][1]))}' for s in res))
    return "matrix " + ";".join(sorted(labels(s["metric"]) + "=" + ",".join(f'{fmt(float(v))}@{int(round(float(t)*1000))}' for t, v in s["values"]) for s in res))
queries = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip() and not l.startswith("//")]
ours = subprocess.run([sys.argv[2] if len(sys.argv) > 2 else "promql_eval", "data.om"], input="\n".join(queries) + "\n", capture_output=True, text=True).stdout.splitlines()
same = diff = 0
for q, o in zip(queries, ours):
    t, expr = q.split("\t", 1)
    p = prom(t, expr)
    mine = o.split("\t", 2)[2]
    if p == mine:
        same += 1
    else:
        diff += 1
        print(f"DIFF t={t} {expr}\n  prom: {p}\n  ours: {mine}")
print(f"{same} same, {diff} different")
