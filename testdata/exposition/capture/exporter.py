# A small real exporter using the official Python client, to capture an
# OpenMetrics page with exemplars, info, stateset, gaugehistogram, units
# and _created samples.
import sys, time, threading, urllib.request
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Summary, Info, Enum,
                               start_http_server)
from prometheus_client.core import GaugeHistogramMetricFamily

reg = CollectorRegistry()
c = Counter('http_requests', 'Total HTTP requests.', ['method', 'code'], registry=reg)
c.labels('get', '200').inc(1027)
c.labels('post', '500').inc(3, exemplar={'trace_id': 'abc123'})
g = Gauge('queue_depth', 'Depth of the "work" queue\\with escapes\nand newline.', ['queue'], registry=reg, unit='bytes')
g.labels('a\\b"c\nd').set(-12.5)
g.labels('inf').set(float('inf'))
g.labels('nan').set(float('nan'))
h = Histogram('request_latency_seconds', 'Latency.', ['handler'], registry=reg, buckets=(0.005, 0.1, 1.0, 2.5))
for v in (0.001, 0.05, 0.2, 3.0):
    h.labels('/api').observe(v)
h.labels('/api').observe(0.07, exemplar={'trace_id': 'KOO5S4vxi0o'})
s = Summary('rpc_duration_seconds', 'RPC duration.', registry=reg)
s.observe(1.5); s.observe(2.5)
i = Info('build', 'Build information.', registry=reg)
i.info({'version': '1.2.3', 'revision': 'deadbeef'})
e = Enum('task_state', 'Task state.', states=['starting', 'running', 'stopped'], registry=reg)
e.state('running')
class GH:
    def collect(self):
        f = GaugeHistogramMetricFamily('queue_wait_seconds', 'Wait time.', buckets=[('0.5', 4), ('+Inf', 9)], gsum_value=7.25)
        yield f
reg.register(GH())
start_http_server(19200, addr='127.0.0.1', registry=reg)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 5)
