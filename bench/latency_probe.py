#!/usr/bin/python3
"""Accept latency of a relay: C client connections in parallel, each sending M messages over
its one connection (SMTP, no pipelining), timing every message from the end of DATA (the
"." line sent) to the relay's reply. The reply is the relay's promise that the message is safe
(signed and fsynced on dkim-relay, in the queue file on Postfix), so this is the wait a client
sees per message. Prints one JSON object: p50/p90/p99/max in ms, and the client-side rate.

  latency_probe.py --relay 127.0.0.1:2525 --msg FILE --connections 20 --per-connection 30
"""
import argparse, json, socket, statistics, threading, time


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


def expect(f, code):
    got, text = read_reply(f)
    if got != code:
        raise RuntimeError(f"expected {code}, got {text!r}")


def client(host, port, data, sender, rcpt, count, out, errors, start):
    try:
        s = socket.create_connection((host, port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        expect(f, 220)
        s.sendall(b"EHLO client3.example.test\r\n"); expect(f, 250)
        start.wait()
        for _ in range(count):
            s.sendall(f"MAIL FROM:<{sender}>\r\n".encode()); expect(f, 250)
            s.sendall(f"RCPT TO:<{rcpt}>\r\n".encode()); expect(f, 250)
            s.sendall(b"DATA\r\n"); expect(f, 354)
            s.sendall(data)
            t = time.perf_counter()
            s.sendall(b".\r\n")
            expect(f, 250)
            out.append(time.perf_counter() - t)
        s.sendall(b"QUIT\r\n")
        s.close()
    except Exception as e:  # reported, not raised: the other clients go on
        errors.append(repr(e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default="127.0.0.1:2525")
    ap.add_argument("--msg", required=True, help="message file (LF or CRLF), as for smtp-source -F")
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--per-connection", type=int, default=30)
    ap.add_argument("--from", dest="sender", default="bench@example.test")
    ap.add_argument("--to", default="sink@example.test")
    a = ap.parse_args()
    host, port = a.relay.rsplit(":", 1)
    raw = open(a.msg, "rb").read().replace(b"\r\n", b"\n").split(b"\n")
    if raw and raw[-1] == b"":
        raw = raw[:-1]
    data = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in raw)
    out, errors, start = [], [], threading.Event()
    threads = [threading.Thread(target=client, args=(host, int(port), data, a.sender, a.to, a.per_connection, out, errors, start))
               for _ in range(a.connections)]
    for t in threads:
        t.start()
    time.sleep(0.5)          # every client past its greeting (smtp-server waits 100 ms before it)
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in out)

    def pct(p):
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 2) if ms else None
    print(json.dumps({
        "connections": a.connections, "per_connection": a.per_connection, "sent": len(ms),
        "errors": errors[:5], "n_errors": len(errors),
        "accept_latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(ms[-1], 2) if ms else None,
                              "mean": round(statistics.mean(ms), 2) if ms else None},
        "client_msg_s": round(len(ms) / elapsed, 1) if elapsed else None,
    }))
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
