# Re-renders a captured text-format page as OpenMetrics with the official
# Python client (an independent implementation), for golden tests.
import sys
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.exposition import generate_latest
class Coll:
    def __init__(self, fams): self.fams = fams
    def collect(self): return iter(self.fams)
src = open(sys.argv[1]).read()
fams = list(text_string_to_metric_families(src))
sys.stdout.write(generate_latest(Coll(fams)).decode())
