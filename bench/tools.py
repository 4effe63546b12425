#!/usr/bin/env python3
"""Load generators and helpers for bench/run (loopback only, bounded in count and time).

  echo PORT                      asyncio TCP echo server (honours half-close)
  rtt PORT N                     one connection, 200 warm-up + N x (64 B write, 64 B read)
  percall PORT N                 N x (connect, 64 B request, 64 B reply, close), sequential
  idle PORT N                    open N connections (each proven by one 64 B echo), print
                                 "ready", hold them until a line on stdin, close, print "closed"
  delay LISTEN UPSTREAM MS       TCP forwarder holding every chunk MS ms in each direction
  rss PID...                     VmRSS in KiB of each PID (0 if gone), space separated
  cpu PID...                     user and system CPU seconds of the PIDs, summed (JSON)
  iperf ACC_FILE                 iperf3 -J output on stdin: prints Gbit/s received, appends
                                 bytes and the endpoints' CPU seconds to ACC_FILE
  work BEFORE AFTER ACC_FILE N   CPU spent between two `cpu` readings (JSON), with the bytes
                                 and endpoint CPU summed from ACC_FILE ("-" if none) and N
                                 units of work (round trips; 0 if bytes are the unit)
  report RESULTS JSON_OUT        print the table of a results file, write the JSON

Results of measuring commands are one JSON object on stdout.
"""

import asyncio
import json
import os
import socket
import statistics
import sys
import time

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


def cmd_percall(port, n):
    lat = []
    pc = time.perf_counter_ns
    start = pc()
    failures = 0
    for _ in range(n):
        t0 = pc()
        try:
            s = connect(port)
            s.sendall(MSG)
            recv_exact(s, 64)
            s.close()
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


async def cmd_idle(port, n):
    conns = []
    gate = asyncio.Semaphore(256)
    failures = 0

    async def one():
        nonlocal failures
        async with gate:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
                w.write(MSG)
                await w.drain()
                await asyncio.wait_for(r.readexactly(64), 30)
                conns.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failures += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    print(json.dumps({"ready": len(conns), "failures": failures,
                      "open_s": time.monotonic() - t0}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, w in conns:
        w.close()
    for _, w in conns:
        try:
            await w.wait_closed()
        except (OSError, ConnectionError):
            pass
    print(json.dumps({"closed": len(conns)}), flush=True)


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


def cpu(pids):
    """User and system CPU seconds of `pids` (gone processes count zero)."""
    tck = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                # The command name may contain spaces: fields count from after its ")".
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return {"user": user / tck, "sys": system / tck}


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
                            ("single", "ours 1:1"), ("mux", "ours multiplexed")]:
            a = r.get("delay.%s" % path)
            if not a:
                continue
            lines.append("| %s | %.1f | %.2f |" % (label, a["p50_us"] / 1000.0,
                                                  a["p50_us"] / 20000.0))

    def idle_rows():
        lines.append("")
        lines.append("## Idle tunnelled connections: RSS of relay + listener + proxy (KiB)")
        lines.append("| mode | connections | baseline | with connections | after close | KiB per connection |")
        lines.append("|---|---|---|---|---|---|")
        for key in sorted(k for k in r if k.startswith("idle.")):
            a = r[key]
            per = (a["held"] - a["baseline"]) / max(1, a["n"])
            lines.append("| %s | %d | %d | %d | %d | %.1f |" % (
                a["mode"], a["n"], a["baseline"], a["held"], a["after"], per))

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
        asyncio.run(cmd_idle(int(args[0]), int(args[1])))
    elif cmd == "delay":
        asyncio.run(cmd_delay(int(args[0]), int(args[1]), float(args[2])))
    elif cmd == "rss":
        print(" ".join(str(rss(int(p))) for p in args))
    elif cmd == "cpu":
        print(json.dumps(cpu([int(p) for p in args])))
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
