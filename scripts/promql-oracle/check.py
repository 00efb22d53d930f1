#!/usr/bin/env python3
"""Check promqltest `.test` files against a real Prometheus (Debian's 2.42).

For every block of data (the `load` commands between two `clear`s) the script
starts two private `prometheus` processes on 127.0.0.1 with empty TSDBs,
remote-writes the loaded samples into them (stale markers keep their exact bit
pattern), then runs every `eval` as an instant or range query through the HTTP
API and compares the answer with the expectation written in the file, using
the same tolerance as promqltest (relative 1e-6, NaN equals NaN).

The expectations describe Prometheus 3.x. 2.42 is made to answer like 3.x
where that is possible ("emulation"):
  * one server runs with --query.lookback-delta=4m59s999ms, so the lookback
    window [t-5m+1ms, t] holds the same samples as 3.x's left-open (t-5m, t];
  * every range `[d]` / subquery range `[d:s]` is rewritten to `[d-1ms]`
    (not under rate/increase/delta, whose result depends on the range length;
    there the script only checks that no sample sits on a window boundary);
  * every regex matcher gets a `(?s)` prefix (3.x lets `.` match newlines).
An unmarked eval must match the emulated answer AND plain 2.42 must agree;
otherwise it needs a marker.

Evals preceded by a `# 3.x: <reason>` comment describe 3.x behaviour that plain
2.42 does not have. For those the script compares the expectation with
  * the expression of an optional `# oracle: <expr>` comment (an equivalent
    2.42 spelling), or else
  * the emulated answer; if 2.42 cannot give it (new functions, changed
    extrapolation) the eval is counted as "not verifiable" and listed with -v.
A marked eval that plain 2.42 already answers as expected is an error.

Parse failures (API errorType bad_data) are only accepted in
parse_errors.test, because the Go promqltest rejects a whole file when one
eval expression does not parse.

`expect warn` / `expect info` lines cannot be checked (2.42's API has no
annotations); they are counted, not compared.

Usage:
  python3 scripts/promql-oracle/check.py testdata/promql/*.test
  python3 scripts/promql-oracle/check.py -v FILE...        # list unverifiable marked evals
  python3 scripts/promql-oracle/check.py --write FILE...   # fill in expectations
      (replaces the expected lines of unmarked evals with the emulated 2.42
       answer; review the diff before keeping it)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

STALE_NAN_BITS = 0x7FF0000000000002
EPSILON = 1e-6
MIN_NORMAL = 2.2250738585072014e-308
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")


class Stale:
    """The staleness marker in expanding notation (`stale`)."""

    def __repr__(self) -> str:
        return "stale"


STALE = Stale()


# --------------------------------------------------------------------------
# Parsing of the .test format (the subset documented in testdata/promql/README.md)
# --------------------------------------------------------------------------

DUR_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration_ms(s: str) -> int:
    """Prometheus duration (`1h30m`, `90s`, `0`) to milliseconds."""
    if s == "0":
        return 0
    m = DUR_RE.match(s)
    if not m or s == "":
        raise ValueError(f"bad duration {s!r}")
    mult = [365 * 86400000, 7 * 86400000, 86400000, 3600000, 60000, 1000, 1]
    return sum(int(g) * k for g, k in zip(m.groups(), mult) if g)


def parse_float(tok: str) -> float:
    low = tok.lower()
    if low in ("nan", "+nan", "-nan"):
        return math.nan
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low.startswith("0x") or low.startswith("+0x") or low.startswith("-0x"):
        return float(int(tok, 16))
    return float(tok)


NUM = r"[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[Ii]nf|NaN)"
ITEM_RE = re.compile(rf"^({NUM})(?:([+-])((?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[Ii]nf|NaN)))?x([0-9]+)$")
BLANK_TIMES_RE = re.compile(r"^_x([0-9]+)$")


def expand_values(text: str) -> list:
    """Expanding notation to a list of float | None (missing) | STALE."""
    out: list = []
    for tok in text.split():
        if tok == "_":
            out.append(None)
            continue
        if tok == "stale":
            out.append(STALE)
            continue
        m = BLANK_TIMES_RE.match(tok)
        if m:
            out.extend([None] * int(m.group(1)))
            continue
        m = ITEM_RE.match(tok)
        if m:
            start = parse_float(m.group(1))
            n = int(m.group(4))
            if m.group(2) is None:
                out.extend([start] * (n + 1))
            else:
                step = parse_float(m.group(3))
                if m.group(2) == "-":
                    step = -step
                v = start
                out.append(v)
                for _ in range(n):
                    v += step
                    out.append(v)
            continue
        out.append(parse_float(tok))
    return out


def parse_labels(text: str) -> tuple[dict, str]:
    """Parse `name{a="b",...}` at the start of text; return (labels, rest)."""
    text = text.strip()
    labels: dict = {}
    i = 0
    m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)
    if m:
        labels["__name__"] = m.group(0)
        i = m.end()
    if i < len(text) and text[i] == "{":
        i += 1
        while True:
            while i < len(text) and text[i] in " ,":
                i += 1
            if i >= len(text):
                raise ValueError(f"unterminated label set in {text!r}")
            if text[i] == "}":
                i += 1
                break
            if text[i] == '"':
                name, i = read_quoted(text, i)
            else:
                m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(text, i)
                if not m:
                    raise ValueError(f"bad label name in {text!r}")
                name = m.group(0)
                i = m.end()
            while text[i] == " ":
                i += 1
            if text[i] != "=":
                raise ValueError(f"expected = in {text!r}")
            i += 1
            while text[i] == " ":
                i += 1
            value, i = read_quoted(text, i)
            labels[name] = value
    elif not m:
        raise ValueError(f"no series in {text!r}")
    return labels, text[i:]


def read_quoted(text: str, i: int) -> tuple[str, int]:
    q = text[i]
    if q not in "\"'`":
        raise ValueError(f"expected quoted string at {text[i:]!r}")
    i += 1
    buf = []
    while text[i] != q:
        c = text[i]
        if c == "\\" and q != "`":
            i += 1
            esc = text[i]
            buf.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}.get(esc, "\\" + esc))
        else:
            buf.append(c)
        i += 1
    return "".join(buf), i + 1


def labels_str(labels: dict) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(
        f'{k}="{json.dumps(v)[1:-1]}"' for k, v in sorted(labels.items()) if k != "__name__"
    )
    if name and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name):
        return f"{name}{{{rest}}}" if rest else name
    if name:
        rest = f'__name__="{name}"' + (", " + rest if rest else "")
    return "{" + rest + "}"


@dataclass
class Expect:
    kind: str  # fail | warn | info | no_warn | no_info | ordered
    match: str | None = None  # msg | regex
    text: str | None = None


@dataclass
class Eval:
    line: int
    expr: str
    is_range: bool
    t: int = 0  # ms (instant)
    start: int = 0
    end: int = 0
    step: int = 0
    expects: list = field(default_factory=list)
    results: list = field(default_factory=list)  # (labels | None for scalar, values)
    result_lines: tuple = (0, 0)  # [first, last) line indexes of expectation lines
    marker: str | None = None  # text of `# 3.x:` comment
    oracle_expr: str | None = None

    @property
    def fails(self) -> bool:
        return any(e.kind == "fail" for e in self.expects)


@dataclass
class Load:
    line: int
    interval: int
    series: list  # (labels, values)


EXPECT_RE = re.compile(r"^expect\s+(fail|warn|info|no_warn|no_info|ordered)(?:\s+(msg|regex):\s*(.*))?$")
INSTANT_RE = re.compile(r"^eval\s+instant\s+at\s+(\S+)\s+(.+)$")
RANGE_RE = re.compile(r"^eval\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$")


def parse_file(path: str) -> list:
    raw = open(path, encoding="utf-8").read().split("\n")
    cmds: list = []
    i = 0
    pending_comments: list = []
    while i < len(raw):
        line = raw[i].strip()
        if line.startswith("#"):
            pending_comments.append(line)
            i += 1
            continue
        if not line:
            pending_comments = []
            i += 1
            continue
        words = line.split()
        if words[0] == "clear":
            cmds.append(("clear", i + 1))
        elif words[0] == "load":
            ld = Load(i + 1, parse_duration_ms(words[1]), [])
            while i + 1 < len(raw) and raw[i + 1].strip() and not raw[i + 1].strip().startswith("#"):
                i += 1
                labels, rest = parse_labels(raw[i])
                ld.series.append((labels, expand_values(rest)))
            cmds.append(("load", ld))
        elif words[0] == "eval":
            m = RANGE_RE.match(line)
            if m:
                ev = Eval(i + 1, m.group(4), True, start=parse_duration_ms(m.group(1)),
                          end=parse_duration_ms(m.group(2)), step=parse_duration_ms(m.group(3)))
            else:
                m = INSTANT_RE.match(line)
                if not m:
                    raise ValueError(f"{path}:{i + 1}: cannot parse eval line")
                ev = Eval(i + 1, m.group(2), False, t=parse_duration_ms(m.group(1)))
            for c in pending_comments:
                if c.startswith("# 3.x:"):
                    ev.marker = c[len("# 3.x:"):].strip()
                elif c.startswith("# oracle:"):
                    ev.oracle_expr = c[len("# oracle:"):].strip()
            first = i + 1
            while i + 1 < len(raw) and raw[i + 1].strip() and not raw[i + 1].strip().startswith("#"):
                i += 1
                body = raw[i].strip()
                em = EXPECT_RE.match(body)
                if em:
                    ev.expects.append(Expect(em.group(1), em.group(2), em.group(3).strip() if em.group(3) is not None else None))
                    first = i + 1
                    continue
                if body[0] in "{" or re.match(r"[a-zA-Z_:]", body) and not re.match(r"(NaN|[Ii]nf)\b", body):
                    labels, rest = parse_labels(body)
                    ev.results.append((labels, expand_values(rest)))
                else:
                    ev.results.append((None, expand_values(body)))
            ev.result_lines = (first, i + 1)
            cmds.append(("eval", ev))
        else:
            raise ValueError(f"{path}:{i + 1}: unknown command {words[0]!r}")
        pending_comments = []
        i += 1
    return cmds


# --------------------------------------------------------------------------
# Remote write encoding (protobuf by hand + snappy literal-only block format)
# --------------------------------------------------------------------------

def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(fieldno: int, data: bytes) -> bytes:
    return uvarint(fieldno << 3 | 2) + uvarint(len(data)) + data


def encode_write_request(series: list) -> bytes:
    """series: list of (labels dict, [(ts_ms, value | STALE)])."""
    out = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for k in sorted(labels):
            ts += pb_bytes(1, pb_bytes(1, k.encode()) + pb_bytes(2, labels[k].encode()))
        for t, v in samples:
            raw = struct.pack("<Q", STALE_NAN_BITS) if v is STALE else struct.pack("<d", v)
            sample = uvarint(1 << 3 | 1) + raw + uvarint(2 << 3 | 0) + uvarint(t & 0xFFFFFFFFFFFFFFFF)
            ts += pb_bytes(2, sample)
        out += pb_bytes(1, bytes(ts))
    return bytes(out)


def snappy_literal(data: bytes) -> bytes:
    out = bytearray(uvarint(len(data)))
    pos = 0
    while pos < len(data):
        chunk = data[pos:pos + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
        pos += len(chunk)
    return bytes(out)


# --------------------------------------------------------------------------
# A private Prometheus
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, loads: list, lookback: str = "5m"):
        self.dir = tempfile.mkdtemp(prefix="promql-oracle-")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             f"--query.lookback-delta={lookback}",
             "--enable-feature=promql-at-modifier,promql-negative-offset"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("prometheus did not become ready")
            time.sleep(0.1)
        self.write(loads)

    def write(self, loads: list) -> None:
        merged: dict = {}
        for ld in loads:
            for labels, values in ld.series:
                key = tuple(sorted(labels.items()))
                lst = merged.setdefault(key, [])
                for idx, v in enumerate(values):
                    if v is not None:
                        lst.append((idx * ld.interval, v))
        series = [(dict(k), sorted(v, key=lambda s: s[0])) for k, v in merged.items() if v]
        if not series:
            return
        body = snappy_literal(encode_write_request(series))
        req = urllib.request.Request(self.base + "/api/v1/write", data=body, method="POST", headers={
            "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status // 100 != 2:
                raise RuntimeError(f"remote write failed: {r.status}")

    def query(self, ev: Eval, expr: str) -> dict:
        if ev.is_range:
            params = {"query": expr, "start": ev.start / 1000, "end": ev.end / 1000, "step": ev.step / 1000}
            url = self.base + "/api/v1/query_range"
        else:
            params = {"query": expr, "time": ev.t / 1000}
            url = self.base + "/api/v1/query"
        data = urllib.parse.urlencode(params).encode()
        try:
            with urllib.request.urlopen(url, data=data, timeout=60) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------

def almost_equal(a, b) -> bool:
    if a is STALE or b is STALE:
        return a is b
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < MIN_NORMAL:
        return diff < EPSILON * MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < EPSILON


def api_float(s: str) -> float:
    return parse_float(s)


def actual_results(ev: Eval, resp: dict) -> tuple[str | None, list | None, str | None]:
    """Return (error, results, result_type). results like Eval.results, in API order."""
    if resp.get("status") != "success":
        err = resp.get("error", "")
        err = re.sub(r'^invalid parameter "query": ', "", err)
        # bad_data = the expression did not parse (or type-check); execution = runtime error.
        return err, None, resp.get("errorType")
    data = resp["data"]
    rt = data["resultType"]
    out = []
    if rt == "scalar":
        if ev.is_range:
            raise AssertionError("scalar from range query")
        out.append((None, [api_float(data["result"][1])]))
    elif rt == "string":
        out.append(("string", data["result"][1]))
    elif rt == "vector":
        for s in data["result"]:
            out.append((s["metric"], [api_float(s["value"][1])]))
    elif rt == "matrix":
        steps = list(range(ev.start, ev.end + 1, ev.step)) if ev.is_range else None
        for s in data["result"]:
            if steps is None:
                return "instant query returned a range vector (unsupported here)", None, rt
            byts = {round(float(t) * 1000): api_float(v) for t, v in s["values"]}
            out.append((s["metric"], [byts.get(t) for t in steps]))
    return None, out, rt


def key_of(labels) -> tuple:
    return tuple(sorted(labels.items())) if isinstance(labels, dict) else ("<scalar>",)


def compare(ev: Eval, err: str | None, got: list | None) -> str | None:
    """Return None if 2.42's answer satisfies the eval, else a description."""
    fail = next((e for e in ev.expects if e.kind == "fail"), None)
    if fail:
        if err is None:
            return "expected failure, query succeeded"
        if fail.match == "msg" and err != fail.text:
            return f"error message differs: {err!r}"
        if fail.match == "regex" and not re.search(fail.text, err):
            return f"error message does not match regex: {err!r}"
        return None
    if err is not None:
        return f"query failed: {err}"
    exp = ev.results
    if ev.is_range:
        # Series whose values are all missing are simply absent from the API output.
        exp = [(l, v) for l, v in exp if any(x is not None for x in v)]
    if any(l == "string" for l, _ in got):
        return "string results are not supported"
    want = {key_of(l): v for l, v in exp}
    have = {key_of(l): v for l, v in got}
    problems = []
    for k in want.keys() - have.keys():
        problems.append(f"missing {fmt_key(k)}")
    for k in have.keys() - want.keys():
        problems.append(f"unexpected {fmt_key(k)} {fmt_values(have[k])}")
    for k in want.keys() & have.keys():
        a, b = want[k], have[k]
        if ev.is_range and len(a) < len(b):
            a = a + [None] * (len(b) - len(a))
        if len(a) != len(b) or not all(almost_equal(x, y) for x, y in zip(a, b)):
            problems.append(f"{fmt_key(k)}: want {fmt_values(a)} got {fmt_values(b)}")
    if not problems and any(e.kind == "ordered" for e in ev.expects):
        if [key_of(l) for l, _ in exp] != [key_of(l) for l, _ in got]:
            problems.append("order differs: got " + ", ".join(fmt_key(key_of(l)) for l, _ in got))
    return "; ".join(problems) if problems else None


def fmt_key(k: tuple) -> str:
    if k == ("<scalar>",):
        return "<scalar>"
    return labels_str(dict(k))


def fmt_value(v) -> str:
    if v is None:
        return "_"
    if v is STALE:
        return "stale"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def fmt_values(vals: list) -> str:
    """Values in expanding notation; runs of integers with a constant step are folded."""
    out = []
    i = 0
    while i < len(vals):
        v = vals[i]
        if v is None:
            j = i
            while j < len(vals) and vals[j] is None:
                j += 1
            out.append("_" if j - i == 1 else f"_x{j - i}")
            i = j
            continue
        j = i + 1
        if isinstance(v, float) and math.isfinite(v) and v == int(v) and i + 1 < len(vals):
            nxt = vals[i + 1]
            if isinstance(nxt, float) and math.isfinite(nxt) and nxt == int(nxt):
                d = nxt - v
                j = i + 1
                while j + 1 < len(vals) and isinstance(vals[j + 1], float) and math.isfinite(vals[j + 1]) \
                        and vals[j + 1] - vals[j] == d:
                    j += 1
                j += 1
        n = j - i
        if n >= 3:
            d = vals[i + 1] - v
            sign = "+" if d >= 0 else "-"
            if d == 0:
                out.append(f"{fmt_value(v)}x{n - 1}")
            else:
                out.append(f"{fmt_value(v)}{sign}{fmt_value(abs(d))}x{n - 1}")
            i = j
        else:
            out.append(fmt_value(v))
            i += 1
    return " ".join(out)


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

EXTRAPOLATING_RE = re.compile(r"\b(rate|increase|delta)\s*\(")
RANGE_DUR_RE = re.compile(r"\[(\s*)((?:\d+(?:ms|[smhdwy]))+)(\s*)(:|\])")


def left_open(expr: str) -> str:
    """Rewrite every range `[d]` / subquery `[d:s]` to `[d-1ms]`.

    On millisecond timestamps 2.42's closed window [t-d+1ms, t] selects exactly
    the samples of 3.x's left-open window (t-d, t].
    """

    def sub(m: re.Match) -> str:
        ms = parse_duration_ms(m.group(2)) - 1
        return f"[{m.group(1)}{ms}ms{m.group(3)}{m.group(4)}"

    return RANGE_DUR_RE.sub(sub, expr)


REGEX_MATCHER_RE = re.compile(r"(=~|!~)(\s*)([\"'`])")


def dot_all(expr: str) -> str:
    """Prefix every regex matcher with `(?s)`: 3.x lets `.` match a newline."""
    return REGEX_MATCHER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}(?s)", expr)


def to_3x(expr: str) -> str:
    return dot_all(left_open(expr))


def extrapolates(expr: str) -> bool:
    """rate/increase/delta use the range length itself, so `[d-1ms]` would shift them."""
    return bool(EXTRAPOLATING_RE.search(expr))


@dataclass
class Stats:
    evals: int = 0
    verified: int = 0
    marked: int = 0
    marked_substituted: int = 0
    marked_emulated: int = 0
    marked_unverified: int = 0
    annotations_unchecked: int = 0
    failures: list = field(default_factory=list)
    unverified: list = field(default_factory=list)


def emulate(servers: dict, ev: Eval) -> tuple:
    """Answer of 2.42 made to follow 3.x window semantics, plus a note if it cannot."""
    emu_server = servers["3x"]
    if extrapolates(ev.expr):
        res = actual_results(ev, emu_server.query(ev, dot_all(ev.expr)))
        alt = actual_results(ev, emu_server.query(ev, to_3x(ev.expr)))
        if res[0] is None and alt[0] is None and not same_loose(res[1], alt[1]):
            return res, "a sample sits on a range boundary under rate/increase/delta: 3.x answer cannot be emulated"
        return res, None
    return actual_results(ev, emu_server.query(ev, to_3x(ev.expr))), None


def same_loose(a: list, b: list) -> bool:
    """Equal series sets with values within 1e-4 relative (a 1 ms range change moves rate by ~1e-6)."""
    da = {key_of(l): v for l, v in a}
    db = {key_of(l): v for l, v in b}
    if da.keys() != db.keys():
        return False
    for k in da:
        for x, y in zip(da[k], db[k]):
            if (x is None) != (y is None):
                return False
            if x is None or (math.isnan(x) and math.isnan(y)) or x == y:
                continue
            if math.isnan(x) or math.isnan(y) or abs(x - y) > 1e-4 * (abs(x) + abs(y)):
                return False
    return True


def same_answer(r1: tuple, r2: tuple) -> bool:
    if r1[0] is not None or r2[0] is not None:
        # Both failing counts as the same answer: the regex rewrite may change the message.
        return r1[0] is not None and r2[0] is not None
    da = {key_of(l): v for l, v in r1[1]}
    db = {key_of(l): v for l, v in r2[1]}
    return da.keys() == db.keys() and all(
        len(da[k]) == len(db[k]) and all(almost_equal(x, y) for x, y in zip(da[k], db[k])) for k in da)


def run_file(path: str, write: bool, stats: Stats) -> None:
    cmds = parse_file(path)
    raw_lines = open(path, encoding="utf-8").read().split("\n")
    replacements: dict = {}  # (first, last) -> list of lines
    loads: list = []
    servers: dict = {}
    dirty = True

    def close_all() -> None:
        for srv in servers.values():
            srv.close()
        servers.clear()

    try:
        for kind, cmd in cmds:
            if kind == "clear":
                loads = []
                dirty = True
                continue
            if kind == "load":
                loads.append(cmd)
                dirty = True
                continue
            ev: Eval = cmd
            stats.evals += 1
            if any(e.kind in ("warn", "info") for e in ev.expects):
                stats.annotations_unchecked += 1
            if dirty:
                close_all()
                servers["raw"] = Server(loads)
                # 1 ms short of 5m: the instant-selector lookback becomes 3.x's (t-5m, t].
                servers["3x"] = Server(loads, lookback="4m59s999ms")
                dirty = False
            where = f"{path}:{ev.line}"
            raw = actual_results(ev, servers["raw"].query(ev, ev.expr))
            if ev.oracle_expr:
                sub = ev.oracle_expr if extrapolates(ev.oracle_expr) else to_3x(ev.oracle_expr)
                emu = actual_results(ev, servers["3x"].query(ev, sub))
                note = None
            else:
                emu, note = emulate(servers, ev)
            problem = compare(ev, emu[0], emu[1])
            # promqltest parses every eval expression up front and rejects the whole
            # file if one does not parse, so parse failures live in parse_errors.test.
            parse_failure = raw[0] is not None and raw[2] == "bad_data"
            in_parse_file = os.path.basename(path) == "parse_errors.test"
            if ev.fails and parse_failure != in_parse_file and ev.marker is None:
                stats.failures.append(f"{where}: `{ev.expr}`: " + (
                    "fails at parse time: move it to parse_errors.test" if parse_failure
                    else "parse_errors.test holds only expressions that do not parse"))
            if write and ev.marker is None and problem is not None and note is None and emu[0] is None \
                    and not ev.fails:
                lines = []
                for labels, vals in emu[1]:
                    text = fmt_values(vals)
                    lines.append(f"    {text}" if labels is None else f"    {labels_str(labels)} {text}")
                replacements[ev.result_lines] = lines
                problem = None
            if ev.marker is None:
                if note:
                    stats.failures.append(f"{where}: `{ev.expr}`: {note}; add a `# 3.x:` marker")
                elif problem:
                    stats.failures.append(f"{where}: `{ev.expr}`: {problem}")
                elif not same_answer(raw, emu):
                    stats.failures.append(f"{where}: `{ev.expr}`: 2.42 answers differently "
                                          f"(window boundary / lookback); add a `# 3.x:` marker")
                else:
                    stats.verified += 1
                continue
            stats.marked += 1
            if ev.oracle_expr:
                if problem:
                    stats.failures.append(f"{where}: oracle substitute `{ev.oracle_expr}` disagrees: {problem}")
                else:
                    stats.marked_substituted += 1
            elif problem is None and note is None and same_answer(raw, emu):
                stats.failures.append(f"{where}: marked `# 3.x:` but 2.42 already gives this answer; drop the marker")
            elif problem is None and note is None:
                stats.marked_emulated += 1
            else:
                stats.marked_unverified += 1
                why = note or problem
                stats.unverified.append(f"{where}: `{ev.expr}` ({ev.marker}): 2.42 emulation: {why}")
    finally:
        close_all()
    if write and replacements:
        out = []
        i = 0
        for (first, last), lines in sorted(replacements.items()):
            out.extend(raw_lines[i:first])
            out.extend(lines)
            i = last
        out.extend(raw_lines[i:])
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--write", action="store_true", help="rewrite mismatching expectations from 2.42 (3.x-emulated)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list marked evals that could not be verified")
    args = ap.parse_args()
    total = Stats()
    keys = ("evals", "verified", "marked", "marked_substituted", "marked_emulated", "marked_unverified",
            "annotations_unchecked")
    for path in args.files:
        st = Stats()
        run_file(path, args.write, st)
        print(f"{path}: {st.evals} evals: {st.verified} unmarked verified; {st.marked} marked 3.x "
              f"({st.marked_emulated} verified by 3.x emulation, {st.marked_substituted} by oracle substitute, "
              f"{st.marked_unverified} not verifiable on 2.42); {len(st.failures)} failures")
        for f in st.failures:
            print("  FAIL " + f)
        if args.verbose:
            for u in st.unverified:
                print("  UNVERIFIED " + u)
        for k in keys:
            setattr(total, k, getattr(total, k) + getattr(st, k))
        total.failures += st.failures
    print(f"TOTAL: {total.evals} evals: {total.verified} unmarked verified; {total.marked} marked 3.x "
          f"({total.marked_emulated} emulated, {total.marked_substituted} substitute, "
          f"{total.marked_unverified} not verifiable on 2.42); "
          f"{total.annotations_unchecked} evals carry warn/info expectations (not checkable on 2.42); "
          f"{len(total.failures)} failures")
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
