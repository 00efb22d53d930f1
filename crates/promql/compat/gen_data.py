#!/usr/bin/env python3
"""Writes data.om, the OpenMetrics data both engines are compared on."""
lines = ["# TYPE http_requests counter"]
for job, inst, f in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 3.0)]:
    for t in range(0, 601, 10):
        lines.append(f'http_requests_total{{job="{job}",instance="{inst}"}} {t / 10 * f} {t}')
lines.append("# TYPE g gauge")
for i in range(0, 11):
    lines.append(f"g {float(i)} {i * 60}")
lines.append("# TYPE resets_me counter")
for i, v in enumerate([0.0, 10.0, 20.0, 5.0, 15.0]):
    lines.append(f"resets_me_total {v} {i * 15}")
lines.append("# TYPE job_info gauge")
for t in range(0, 601, 60):
    lines.append(f'job_info{{job="api",team="x"}} 1 {t}')
    lines.append(f'job_info{{job="db",team="y"}} 1 {t}')
lines.append("# TYPE req_dur histogram")
for job, mult in [("api", 1), ("db", 3)]:
    for t in range(0, 601, 15):
        k = t // 15
        c = [k * 2 * mult, k * 5 * mult, k * 7 * mult, k * 8 * mult]
        for le, v in zip(["0.1", "0.5", "1.0", "+Inf"], c):
            lines.append(f'req_dur_bucket{{job="{job}",le="{le}"}} {v} {t}')
        lines.append(f'req_dur_count{{job="{job}"}} {c[3]} {t}')
        lines.append(f'req_dur_sum{{job="{job}"}} {k * 3.0 * mult} {t}')
lines.append("# EOF")
open("data.om", "w").write("\n".join(lines) + "\n")
