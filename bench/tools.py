#!/usr/bin/env python3
"""Load generators and helpers for bench/run (loopback only, bounded in count and time).

  echo PORT                      asyncio TCP echo server (honours half-close)
  rtt PORT N                     one connection, 200 warm-up + N x (64 B write, 64 B read)
  percall PORT N                 N x (connect, 64 B request, 64 B reply, close), sequential
  idle PORT N [SOURCES]          open N connections (each proven by one 64 B echo), print
                                 "ready", hold them until a line on stdin, close, print "closed";
                                 SOURCES: from that many addresses 127.0.1.1, 127.0.1.2, ...
  delay LISTEN UPSTREAM MS       TCP forwarder holding every chunk MS ms in each direction
  listeners URL PREFIX N KEYNAME KEY
                                 open N listener control channels (WebSocket upgrade with a
                                 namespace-wide SAS token, ws:// or wss:// unverified) to the
                                 hybrid connections PREFIX0..PREFIX{N-1} of the relay at URL,
                                 print "ready", hold them until a line on stdin, close
  setup PORT SECONDS CONCURRENCY new connections for SECONDS from CONCURRENCY workers, each
                                 (connect, 64 B, 64 B echo, close): rate, p50/p99 setup time
  paced PORT SECONDS INTERVAL_MS one call (connect, 64 B, 64 B, close) every INTERVAL_MS for
                                 SECONDS: p50/p99 of a call while something else runs
  rss PID...                     VmRSS in KiB of each PID (0 if gone), space separated
  cpu PID...                     user and system CPU seconds of the PIDs, summed (JSON)
  cpus NAME=PID...               the same for each named process ({"NAME": {"user", "sys"}})
  iperf ACC_FILE                 iperf3 -J output on stdin: prints Gbit/s received, appends
                                 bytes and the endpoints' CPU seconds to ACC_FILE
  work BEFORE AFTER ACC_FILE N   CPU spent between two `cpu` readings (JSON), with the bytes
                                 and endpoint CPU summed from ACC_FILE ("-" if none) and N
                                 units of work (round trips; 0 if bytes are the unit)
  report RESULTS JSON_OUT        print the table of a results file, write the JSON

Results of measuring commands are one JSON object on stdout.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import socket
import ssl
import statistics
import sys
import time
import urllib.parse

MSG = b"x" * 64


def pct(values, p):
    s = sorted(values)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(got), n))
        got += chunk
    return got


def cmd_rtt(port, n):
    s = connect(port)
    for _ in range(200):
        s.sendall(MSG)
        recv_exact(s, 64)
    lat = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t0 = pc()
        s.sendall(MSG)
        recv_exact(s, 64)
        lat.append((pc() - t0) / 1000.0)
    s.close()
    print(json.dumps({"p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "n": n}))


def one_call(port):
    """The legacy per-call pattern once: connect, 64 B request, 64 B reply, close."""
    s = connect(port)
    s.sendall(MSG)
    recv_exact(s, 64)
    s.close()


def cmd_percall(port, n):
    lat = []
    pc = time.perf_counter_ns
    start = pc()
    failures = 0
    for _ in range(n):
        t0 = pc()
        try:
            one_call(port)
        except OSError:
            failures += 1
            continue
        lat.append((pc() - t0) / 1000.0)
    wall = (pc() - start) / 1e9
    print(json.dumps({
        "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "calls_per_s": len(lat) / wall,
        "n": n, "failures": failures,
    }))


async def echo_handler(reader, writer):
    try:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def cmd_echo(port):
    server = await asyncio.start_server(echo_handler, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def cmd_idle(port, n, sources=0):
    """N connections, each one echoed call, then held. SOURCES > 0: from that many source
    addresses 127.0.1.1, 127.0.1.2, ... in turn (one address has only ~28,000 ports)."""
    conns = []
    gate = asyncio.Semaphore(256)
    failures = 0

    async def one(i):
        nonlocal failures
        local = ("127.0.1.%d" % (i % sources + 1), 0) if sources else None
        async with gate:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=local), 30)
                w.write(MSG)
                await w.drain()
                await asyncio.wait_for(r.readexactly(64), 30)
                conns.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failures += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    await hold(conns, {"failures": failures, "open_s": time.monotonic() - t0})


async def hold(conns, report):
    """Prints `ready` (with `report`), holds `conns` until a line on stdin, closes them."""
    print(json.dumps(dict(report, ready=len(conns))), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, w in conns:
        w.close()
    for _, w in conns:
        try:
            await w.wait_closed()
        except (OSError, ConnectionError, ssl.SSLError):
            pass
    print(json.dumps({"closed": len(conns)}), flush=True)


def sas_token(resource_uri, key_name, key, ttl=3600):
    """A Shared Access Signature token as hc-protocol's `SasToken::sign` makes it."""
    sr = urllib.parse.quote(resource_uri, safe="")
    expiry = str(int(time.time()) + ttl)
    sig = hmac.new(key.encode(), (sr + "\n" + expiry).encode(), hashlib.sha256).digest()
    return "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s" % (
        sr, urllib.parse.quote(base64.b64encode(sig).decode(), safe=""), expiry,
        urllib.parse.quote(key_name, safe=""))


async def cmd_listeners(url, prefix, n, key_name, key):
    """Control channels as a listener opens them: the upgrade only (the relay's control
    messages and pings are never read; the bench relay pings rarely, see bench/run)."""
    u = urllib.parse.urlsplit(url)
    tls = None
    if u.scheme == "wss":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # loopback, the relay's self-signed certificate
    # A namespace-wide token (no path) covers every hybrid connection below it.
    token = urllib.parse.quote(sas_token("http://%s/" % u.hostname, key_name, key), safe="")
    conns = []
    gate = asyncio.Semaphore(128)
    failures = {}

    async def one(i):
        async with gate:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(u.hostname, u.port, ssl=tls), 30)
                w.write((
                    "GET /$hc/%s%d?sb-hc-action=listen&sb-hc-id=bench-%d&sb-hc-token=%s HTTP/1.1\r\n"
                    "Host: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (
                        prefix, i, i, token, u.netloc,
                        base64.b64encode(os.urandom(16)).decode())).encode())
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
                status = head.split(b" ", 2)[1].decode()
                if status != "101":
                    failures[status] = failures.get(status, 0) + 1
                    w.close()
                    return
                conns.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ssl.SSLError, IndexError) as e:
                failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    await hold(conns, {"failures": failures, "open_s": time.monotonic() - t0})


def own_cpu():
    """This process's user + system CPU seconds."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def cmd_setup(port, seconds, concurrency):
    """New connections as fast as `concurrency` workers make them: each connects, sends 64 B,
    reads the 64 B echo (the setup time: connect to echo) and closes."""
    loop = asyncio.get_running_loop()
    pc = time.perf_counter_ns
    lat = []
    failures = {}
    cpu0 = own_cpu()
    deadline = loop.time() + seconds

    # Socket-level calls, not streams: the client's own CPU per connection bounds the rate.
    async def worker():
        while loop.time() < deadline:
            t0 = pc()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                async with asyncio.timeout(10):
                    await loop.sock_connect(s, ("127.0.0.1", port))
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    await loop.sock_sendall(s, MSG)
                    got = 0
                    while got < len(MSG):
                        chunk = await loop.sock_recv(s, len(MSG) - got)
                        if not chunk:
                            raise ConnectionError("closed before the echo")
                        got += len(chunk)
                lat.append((pc() - t0) / 1000.0)
            except (OSError, TimeoutError) as e:
                failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                await asyncio.sleep(0.01)  # bounded: a failing path is not hammered
            finally:
                s.close()

    t0 = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = loop.time() - t0
    print(json.dumps({
        "per_s": len(lat) / wall, "n": len(lat), "seconds": wall, "concurrency": concurrency,
        "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "failures": failures,
        "client_cpu_s": own_cpu() - cpu0,
    }))


def cmd_paced(port, seconds, interval_ms):
    """One call every `interval_ms` for `seconds` (a call late by more than the interval
    starts the next at once): what a lone client sees while the machine is busy."""
    lat = []
    failures = 0
    wait0, slices0 = sched(os.getpid())
    pc = time.perf_counter_ns
    step = interval_ms / 1000.0
    end = time.monotonic() + seconds
    due = time.monotonic()
    while time.monotonic() < end:
        t0 = pc()
        try:
            one_call(port)
            lat.append((pc() - t0) / 1000.0)
        except OSError:
            failures += 1
        due += step
        time.sleep(max(0.0, due - time.monotonic()))
    wait1, slices1 = sched(os.getpid())
    print(json.dumps({"p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "n": len(lat),
                      "failures": failures, "self_wait_ns": wait1 - wait0,
                      "self_slices": slices1 - slices0}))


async def cmd_delay(listen, upstream, ms):
    delay = ms / 1000.0
    loop = asyncio.get_running_loop()

    async def pipe(reader, writer):
        queue = asyncio.Queue()

        async def rx():
            while True:
                data = await reader.read(65536)
                await queue.put((loop.time() + delay, data))
                if not data:
                    return

        async def tx():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    try:
                        writer.write_eof()
                    except (OSError, RuntimeError):
                        pass
                    return
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(rx(), tx())
        except (ConnectionError, OSError):
            pass

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            cw.close()
            return
        for w in (cw, uw):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
        cw.close()
        uw.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=1024)
    async with server:
        await server.serve_forever()


def rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def sched(pid):
    """Nanoseconds `pid`'s threads waited on a run queue, and how many times they were run
    (/proc/PID/task/*/schedstat: run time, run-queue wait, time slices)."""
    wait = slices = 0
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0, 0
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                fields = f.read().split()
            wait += int(fields[1])
            slices += int(fields[2])
        except (OSError, ValueError, IndexError):
            pass
    return wait, slices


def cpu(pids):
    """User and system CPU seconds of `pids` (gone processes count zero), and their run-queue
    wait (`wait_ns`) over `slices` times run: how long, on average, a woken process waited for
    a core."""
    tck = os.sysconf("SC_CLK_TCK")
    user = system = wait = slices = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                # The command name may contain spaces: fields count from after its ")".
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
        w, n = sched(pid)
        wait += w
        slices += n
    return {"user": user / tck, "sys": system / tck, "wait_ns": wait, "slices": slices}


def cmd_iperf(acc_path):
    end = json.load(sys.stdin)["end"]
    got = end["sum_received"]
    cpu_pct = end.get("cpu_utilization_percent", {})
    secs = got["seconds"]
    with open(acc_path, "a") as f:
        f.write("%d %f %f\n" % (
            got["bytes"],
            (cpu_pct.get("host_user", 0) + cpu_pct.get("remote_user", 0)) / 100.0 * secs,
            (cpu_pct.get("host_system", 0) + cpu_pct.get("remote_system", 0)) / 100.0 * secs))
    print(got["bits_per_second"] / 1e9)


def cmd_work(before, after, acc_path, count):
    a, b = json.loads(before), json.loads(after)
    out = {"user": b["user"] - a["user"], "sys": b["sys"] - a["sys"], "count": count}
    if acc_path != "-":
        total = [0, 0.0, 0.0]
        with open(acc_path) as f:
            for line in f:
                for i, v in enumerate(line.split()):
                    total[i] += float(v)
        out.update({"bytes": int(total[0]), "endpoint_user": total[1],
                    "endpoint_sys": total[2]})
    print(json.dumps(out))


# The paths of the latency and CPU tables, in print order (a path without results is
# skipped: the round-trip and per-call steps do not measure rathole's websocket transport).
PATHS = [("direct", "direct TCP"), ("single", "ours 1:1"), ("mux", "ours multiplexed"),
         ("rathole-tcp", "rathole tcp"), ("rathole-ws", "rathole websocket")]


def ratio(v, base):
    return v / base if base else 0.0


def cmd_report(results_path, json_out):
    """Reads `key value` lines (value JSON) and prints the table with ratios to direct."""
    r = {}
    with open(results_path) as f:
        for line in f:
            line = line.strip()
            if line:
                key, value = line.split(" ", 1)
                r[key] = json.loads(value)
    out = {"results": r}
    lines = []
    meta = r.get("meta", {})
    lines.append("machine: %s" % meta.get("machine", "?"))
    lines.append("rev: %s   date: %s" % (meta.get("rev", "?"), meta.get("date", "?")))
    lines.append("")

    def bulk_rows():
        d1 = r.get("bulk.direct.P1", {}).get("gbps")
        d8 = r.get("bulk.direct.P8", {}).get("gbps")
        lines.append("## Bulk throughput (iperf3, median of 3; Gbit/s and x direct)")
        lines.append("| path | 1 stream | x direct | 8 streams | x direct |")
        lines.append("|---|---|---|---|---|")
        for path, label in [("direct", "direct TCP"), ("single", "ours 1:1 (ws)"),
                            ("mux", "ours multiplexed (ws)"),
                            ("rathole-tcp", "rathole 0.5.0 tcp"),
                            ("rathole-ws", "rathole 0.5.0 websocket")]:
            a = r.get("bulk.%s.P1" % path)
            b = r.get("bulk.%s.P8" % path)
            if not a or not b:
                lines.append("| %s | skipped | | | |" % label)
                continue
            lines.append("| %s | %.2f | %.2f | %.2f | %.2f |" % (
                label, a["gbps"], ratio(a["gbps"], d1), b["gbps"], ratio(b["gbps"], d8)))
        after = r.get("rss.after_bulk")
        if after:
            lines.append("")
            lines.append("RSS after the bulk runs (KiB): " + ", ".join(
                "%s %d" % (k, v) for k, v in sorted(after.items())))

    def rtt_rows():
        d = r.get("rtt.direct")
        lines.append("")
        lines.append("## Small round trip on an open tunnel (64 B echo, 1 connection)")
        lines.append("| path | p50 us | p99 us | added p50 us | added p99 us |")
        lines.append("|---|---|---|---|---|")
        for path, label in PATHS:
            a = r.get("rtt.%s" % path)
            if not a or not d:
                continue
            lines.append("| %s | %.0f | %.0f | %+.0f | %+.0f |" % (
                label, a["p50_us"], a["p99_us"], a["p50_us"] - d["p50_us"],
                a["p99_us"] - d["p99_us"]))

    def cpu_rows():
        """CPU per unit of work, and what it bounds (see docs/performance.md)."""
        lines.append("")
        lines.append("## CPU per unit of work (user + system; tunnel processes, direct: both iperf3 ends)")
        lines.append("| path | bulk 1 stream CPU-s/GB (sys %) | ceiling x direct | "
                     "bulk 8 streams CPU-s/GB (sys %) | ceiling x direct | "
                     "round trip CPU us (sys us) |")
        lines.append("|---|---|---|---|---|---|")
        for path, label in PATHS:
            cells = [label]
            for streams in (1, 8):
                w = r.get("cpu.bulk.%s.P%d" % (path, streams))
                g = r.get("bulk.%s.P%d" % (path, streams), {}).get("gbps")
                d = r.get("bulk.direct.P%d" % streams, {}).get("gbps")
                if not w or not w.get("bytes"):
                    cells += ["", ""]
                    continue
                user, system = w["user"], w["sys"]
                if path == "direct":
                    user, system = w["endpoint_user"], w["endpoint_sys"]
                gb = w["bytes"] / 1e9
                total = user + system
                cells.append("%.3f (%.0f %%)" % (total / gb, 100.0 * system / total if total else 0))
                # With the 2 cores saturated, throughput scales with 1 / CPU per byte: if the
                # tunnel processes spent nothing in user space, at most this (Amdahl).
                ends = w["endpoint_user"] + w["endpoint_sys"]
                if path != "direct" and g and d and ends + system:
                    cells.append("%.2f" % (ratio(g, d) * (ends + total) / (ends + system)))
                else:
                    cells.append("")
            w = r.get("cpu.rtt.%s" % path)
            if w and w.get("count") and path != "direct":
                n = w["count"]
                cells.append("%.1f (%.1f)" % ((w["user"] + w["sys"]) / n * 1e6, w["sys"] / n * 1e6))
            else:
                cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("ceiling: the x-direct figure if the tunnel processes spent no user-space CPU "
                     "at all (CPU-bound, both cores busy). Round trip: one message in flight, so "
                     "the tunnel processes' CPU per round trip is on the critical path; its "
                     "system part alone is a floor for the added latency.")

    def percall_rows():
        d = r.get("percall.direct")
        lines.append("")
        lines.append("## Legacy per-call pattern (connect, 64 B request, 64 B reply, close)")
        lines.append("| path | p50 us | p99 us | calls/s | x direct calls/s |")
        lines.append("|---|---|---|---|---|")
        for path, label in PATHS:
            a = r.get("percall.%s" % path)
            if not a or not d:
                continue
            lines.append("| %s | %.0f | %.0f | %.0f | %.2f |" % (
                label, a["p50_us"], a["p99_us"], a["calls_per_s"],
                ratio(a["calls_per_s"], d["calls_per_s"])))
        lines.append("")
        lines.append("## Per call with 20 ms RTT between site and relay (wss, delay forwarder)")
        lines.append("| path | p50 ms | round trips per call (p50 / 20 ms) |")
        lines.append("|---|---|---|")
        for path, label in [("direct", "direct TCP (no relay: 0 RTT)"),
                            ("single", "ours 1:1"),
                            ("pre", "ours 1:1, 4 pre-opened (target <= 2 RTT)"),
                            ("mux", "ours multiplexed")]:
            a = r.get("delay.%s" % path)
            if not a:
                continue
            lines.append("| %s | %.1f | %.2f |" % (label, a["p50_us"] / 1000.0,
                                                  a["p50_us"] / 20000.0))

    def idle_rows():
        lines.append("")
        lines.append("## Idle tunnelled connections: RSS of relay + listener + proxy (KiB)")
        lines.append("| mode | connections | baseline | with connections | after close | KiB per connection | target |")
        lines.append("|---|---|---|---|---|---|---|")
        for key in sorted(k for k in r if k.startswith("idle.")):
            a = r[key]
            per = (a["held"] - a["baseline"]) / max(1, a["n"])
            # Issue #17: 1:1 <= 30 KiB (item 1), multiplexed streams <= 15 KiB (item 5).
            target = "<= 30" if a["mode"].startswith("single") else (
                "<= 15" if a["mode"] == "streams" else "")
            lines.append("| %s | %d | %d | %d | %d | %.1f | %s |" % (
                a["mode"], a["n"], a["baseline"], a["held"], a["after"], per, target))
        lines.append("")
        lines.append("streams: idle multiplexed streams through one proxy and listener; target "
                     "100,000 at <= 15 KiB each (issue #17 item 5)")
        limited = r.get("streams.limited")
        if limited:
            lines.append("streams: %d measured, not %d: the open-file limit is %d here" % (
                limited["measured"], limited["wanted"], limited["limit"]))

    def capacity_rows():
        """Relay capacity beside the issue #17 targets and the same run's baselines."""
        if not any(k.startswith("capacity.") for k in r):
            return
        lines.append("")
        lines.append("## Relay capacity (one hybrid connection per site; 64 clients open new tunnels)")
        if "capacity.load_before" in r:
            lines.append("load average (1, 5, 15 min) before %s, after %s: every process of the "
                         "step shares the 2 cores with whatever else runs" % (
                             r["capacity.load_before"]["loadavg"],
                             r.get("capacity.load_after", {}).get("loadavg", "?")))
        lines.append("| figure | value | target | | same run's baseline |")
        lines.append("|---|---|---|---|---|")

        def row(figure, value, target, met, base):
            mark = "" if met is None else ("met" if met else "**missed**")
            lines.append("| %s | %s | %s | %s | %s |" % (figure, value, target, mark, base))

        for scheme in ("wss", "ws"):
            a = r.get("capacity.listeners.%s" % scheme)
            if not a:
                continue
            ready = a["client"].get("ready", 0)
            per = (a["held"] - a["baseline"]) / max(1, ready)
            row("relay RSS per connected listener, %s (%d of %d connected)" % (
                scheme, ready, a["n"]), "%.1f KiB" % per, "<= 16 KiB",
                per <= 16 and ready == a["n"],
                "relay alone %.1f MB; with them %.1f MB; after close %.1f MB" % (
                    a["baseline"] / 1024, a["held"] / 1024, a["after"] / 1024))
        b = r.get("capacity.bridged")
        if b:
            ready = max(1, b["client"].get("ready", 0))
            per = [(h - o) / ready for h, o in zip(b["held"], b["baseline"])]
            row("RSS per bridged idle 1:1 connection, wss (%d): relay / listener / proxy" % ready,
                "%.1f / %.1f / %.1f KiB" % tuple(per), "", None,
                "relay %.1f MB -> %.1f MB -> %.1f MB after close" % (
                    b["baseline"][0] / 1024, b["held"][0] / 1024, b["after"][0] / 1024))
        site = r.get("capacity.site")
        if site:
            row("one site's idle `listen` process (control channel open)",
                "%.1f MB RSS" % (site["listener_rss"] / 1024), "", None, "")

        def rate(name):
            a = r.get("capacity.rate.%s" % name)
            return (a, a["setup"]) if a and a["setup"].get("n") else (None, None)

        direct = rate("direct")[1]
        base = "direct TCP %.0f/s" % direct["per_s"] if direct else ""
        for name, label in (("single-wss", "new 1:1 tunnels per second, wss"),
                            ("single-ws", "new 1:1 tunnels per second, ws"),
                            ("rathole-tcp", "rathole 0.5.0 tcp new connections per second (no TLS)"),
                            ("direct", "direct TCP new connections per second")):
            a, s = rate(name)
            if not a:
                if name == "rathole-tcp":
                    row(label, "skipped", "", None, "")
                continue
            fails = sum(s.get("failures", {}).values())
            value = "%.0f/s; setup p50 %.1f / p99 %.1f ms%s" % (
                s["per_s"], s["p50_us"] / 1000, s["p99_us"] / 1000,
                "; %d failed" % fails if fails else "")
            target = ">= 2000/s" if name.startswith("single") else ""
            met = s["per_s"] >= 2000 if name.startswith("single") else None
            row(label, value, target, met, base if name != "direct" else "")
        quiet, load = r.get("capacity.mux.quiet"), r.get("capacity.mux.load")
        if quiet and load:
            row("a multiplexed call (64 B) while new wss tunnels are opened: p50 / p99",
                "%.2f / %.2f ms (%d calls)" % (load["p50_us"] / 1000, load["p99_us"] / 1000,
                                               load["n"]),
                "p99 < 5 ms", load["p99_us"] < 5000 and not load.get("failures"),
                "quiet: %.2f / %.2f ms" % (quiet["p50_us"] / 1000, quiet["p99_us"] / 1000))
        burn = r.get("capacity.mux.burn")
        if burn:
            row("the same multiplexed call while %d busy loops hold the cores (no tunnels)"
                % (os.cpu_count() or 0),
                "%.2f / %.2f ms (%d calls)" % (burn["p50_us"] / 1000, burn["p99_us"] / 1000,
                                               burn["n"]), "", None, "")
        quiet, load = r.get("capacity.direct.quiet"), r.get("capacity.direct.load")
        if quiet and load:
            row("a direct TCP call (64 B) to the echo server at the same time: p50 / p99",
                "%.2f / %.2f ms (%d calls)" % (load["p50_us"] / 1000, load["p99_us"] / 1000,
                                               load["n"]), "", None,
                "quiet: %.2f / %.2f ms" % (quiet["p50_us"] / 1000, quiet["p99_us"] / 1000))
        # How long a woken process waited for a core: a call crosses each process of its
        # path twice, so on a saturated machine these waits add up to the call's delay.
        def waits(a, paced):
            cells = []
            for proc in ("relay", "mux_proxy", "mux_listener", "echo"):
                before, after = a["cpu_before"].get(proc), a["cpu_after"].get(proc)
                if before and after and after.get("slices", 0) > before.get("slices", 0):
                    cells.append("%s %.0f" % (proc, (after["wait_ns"] - before["wait_ns"]) /
                                              (after["slices"] - before["slices"]) / 1000))
            if paced and paced.get("self_slices"):
                cells.append("calling client %.0f" % (paced["self_wait_ns"] /
                                                      paced["self_slices"] / 1000))
            return ", ".join(cells)
        sq, sl = r.get("capacity.sched.quiet"), rate("single-wss")[0]
        if sq and sl:
            row("run-queue wait per wake-up of the multiplexed call's processes (us)",
                waits(sl, r.get("capacity.mux.load")), "", None,
                "quiet: " + waits(sq, r.get("capacity.mux.quiet")))
        lines.append("")
        lines.append("CPU per new tunnel (user + system us; system in brackets), each process:")
        for name in ("single-wss", "single-ws", "rathole-tcp", "direct"):
            a, s = rate(name)
            if not a:
                continue
            cells = []
            for proc, after in a["cpu_after"].items():
                before = a["cpu_before"][proc]
                user = after["user"] - before["user"]
                system = after["sys"] - before["sys"]
                cells.append("%s %.0f (%.0f)" % (proc, (user + system) / s["n"] * 1e6,
                                                  system / s["n"] * 1e6))
            cells.append("client %.0f" % (s["client_cpu_s"] / s["n"] * 1e6))
            lines.append("    %s: %s" % (name, ", ".join(cells)))

    def license_rows():
        lic = r.get("license")
        lines.append("")
        lines.append("## License server login-refresh (bench/license.sh)")
        if lic:
            for l in lic.get("lines", []):
                lines.append("    " + l)
        else:
            lines.append("    skipped")

    bulk_rows()
    rtt_rows()
    cpu_rows()
    percall_rows()
    idle_rows()
    capacity_rows()
    license_rows()
    text = "\n".join(lines)
    print(text)
    out["table"] = text
    with open(json_out, "w") as f:
        json.dump(out, f, indent=2)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        asyncio.run(cmd_echo(int(args[0])))
    elif cmd == "rtt":
        cmd_rtt(int(args[0]), int(args[1]))
    elif cmd == "percall":
        cmd_percall(int(args[0]), int(args[1]))
    elif cmd == "idle":
        asyncio.run(cmd_idle(int(args[0]), int(args[1]), int(args[2]) if len(args) > 2 else 0))
    elif cmd == "listeners":
        asyncio.run(cmd_listeners(args[0], args[1], int(args[2]), args[3], args[4]))
    elif cmd == "setup":
        asyncio.run(cmd_setup(int(args[0]), float(args[1]), int(args[2])))
    elif cmd == "paced":
        cmd_paced(int(args[0]), float(args[1]), float(args[2]))
    elif cmd == "delay":
        asyncio.run(cmd_delay(int(args[0]), int(args[1]), float(args[2])))
    elif cmd == "rss":
        print(" ".join(str(rss(int(p))) for p in args))
    elif cmd == "cpu":
        print(json.dumps(cpu([int(p) for p in args])))
    elif cmd == "cpus":
        print(json.dumps({n: cpu([int(p)]) for n, p in (a.split("=", 1) for a in args)}))
    elif cmd == "iperf":
        cmd_iperf(args[0])
    elif cmd == "work":
        cmd_work(args[0], args[1], args[2], int(args[3]))
    elif cmd == "report":
        cmd_report(args[0], args[1])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
