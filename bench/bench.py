#!/usr/bin/python3
"""dkim-relay against Postfix + OpenDKIM, side by side, on loopback (issue 7).

Both relays get the same load (Postfix's smtp-source), the same recipient MX (smtp-sink) and
the same DKIM verification (python3-dkim), all from ../shared/peer, which is called, never
copied. For every case the two relays run interleaved (A B A B ...), each run on a freshly
started relay after a warm-up (WARMUP), and bench/RESULTS.md gets medians with min-max.

  npm run bench                       # full run (~20 min), writes bench/RESULTS.md
  npm run bench -- --quick            # 1 run per case, fewer messages (~3 min)
  npm run bench -- --cases c20,big    # some cases only (see --list)
  npm run bench -- --ref HEAD         # measure a committed revision (git archive into a temp dir)
  npm run bench -- --profile-only     # just the node --cpu-prof runs

Needs root (setup.sh installs and starts Postfix, OpenDKIM, dnsmasq, smtp-sink).
"""
import argparse, datetime, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER_SCRIPTS = os.path.abspath(os.environ.get("PEER_SCRIPTS", os.path.join(REPO, "..", "shared", "peer")))
PY = "/usr/bin/python3"           # Debian's python: dkim, nacl, dnspython come from its packages
NODE = os.path.join(REPO, "node_modules", ".bin", "node")
WORK = os.environ.get("BENCH_WORK", "/tmp/dkim-relay-bench")
# A run during which the hypervisor gave more than this share of the vCPUs to other guests is
# repeated (at most STEAL_RETRIES times); the discarded runs stay in RESULTS.jsonl.
STEAL_LIMIT_PCT = 8.0
STEAL_RETRIES = 2
RELAY_EXTRA_ENV = {}  # --relay-env K=V,...: experiments (e.g. UV_THREADPOOL_SIZE=16, RELAY_LOG_LEVEL=warn)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, text=True, capture_output=True, **kw)


def peer_env():
    names = "PEER DOMAIN SELECTOR ED_SELECTOR DNS_ADDR DNS_PORT RELAY_ADDR RELAY_PORT SINK_ADDR SINK_PORT PF_CONF PF_SPOOL DKIM_DIR OD_DIR SINK_DIR SINK_MAIL".split()
    out = sh(["bash", "-c", f". '{PEER_SCRIPTS}/peer.env'; " + "; ".join(f'echo "${n}"' for n in names)]).stdout.splitlines()
    return dict(zip(names, out))


E = None  # peer.env values, filled in main()

# ------------------------------------------------------------------ cases
# reuse: smtp-source -d (the next message over the same connection); else one connection per message.
# The four cases the targets are about get 5 runs each (others 3): their ratios are the ones
# that decide, and a single noisy run moves a median of 3.
CASES = [
    dict(id="c20", label="20 sessions, 10 KB", size=10240, sessions=20, reuse=False, n=2000, quick=300, runs=5),
    dict(id="c1", label="1 session, 10 KB", size=10240, sessions=1, reuse=False, n=1000, quick=100, runs=5),
    dict(id="c20d", label="20 sessions, 10 KB, connection reuse", size=10240, sessions=20, reuse=True, n=2000, quick=300, runs=5),
    dict(id="c1d", label="1 session, 10 KB, connection reuse", size=10240, sessions=1, reuse=True, n=1000, quick=150, runs=5),
    dict(id="k1", label="20 sessions, 1 KB, connection reuse", size=1024, sessions=20, reuse=True, n=800, quick=300),
    dict(id="k100", label="20 sessions, 100 KB, connection reuse", size=102400, sessions=20, reuse=True, n=300, quick=100),
    dict(id="dual", label="20 sessions, 10 KB, RSA-2048 + Ed25519, connection reuse", size=10240, sessions=20, reuse=True,
         n=800, quick=300, keys="dual", relays=("dkim-relay",)),
    # What the steady-state cases leave out, measured: a relay just started (its JIT still
    # compiling), and dkim-relay delivering by MX lookup (dnsmasq answers with TTL 0, so an
    # MX and an A query per message) where Postfix cannot (its resolver has no port 5353).
    dict(id="c20cold", label="20 sessions, 10 KB, just started (100-message warm-up)", size=10240, sessions=20, reuse=False,
         n=800, quick=300, warmup=100),
    dict(id="c20mx", label="20 sessions, 10 KB, MX lookup per message", size=10240, sessions=20, reuse=False,
         n=800, quick=300, route="mx", relays=("dkim-relay",)),
    dict(id="lat", label="accept latency, 10 KB, 20 connections x 30 messages", size=10240, probe=(20, 30), quick_probe=(20, 15)),
    dict(id="lat1", label="accept latency, 10 KB, 1 connection x 100 messages", size=10240, probe=(1, 100), quick_probe=(1, 50)),
    dict(id="big", label="one 50 MB message", size=50_000_000, sessions=1, reuse=False, n=1, quick=1, runs=2, quick_runs=1),
]
RELAYS = ("dkim-relay", "postfix")
# Runs per relay of a case that does not say (`runs=`).
DEFAULT_RUNS = 3
# Messages sent before every measured run (10 sessions, connection reuse), to both relays: a
# relay runs for days, so the cases measure it warm (V8 has compiled the hot paths; Postfix's
# processes are forked). c20cold measures a relay just started.
WARMUP = 1000
QUICK_WARMUP = 200
NAMES = {"dkim-relay": "dkim-relay", "postfix": "Postfix+OpenDKIM"}


# ------------------------------------------------------------------ messages
def message_file(size):
    """The peer's test message (bench.sh's format: fixed headers, text body, ~size bytes with CRLF)."""
    path = os.path.join(E["PEER"], "bench", f"msg-{size}.eml")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    hdr = ["From: Bench Sender <bench@example.test>", "To: Sink <sink@example.test>",
           "Subject: peer baseline message", "Date: Thu, 01 Jan 2026 00:00:00 +0000",
           "Message-ID: <peer-baseline@example.test>", "MIME-Version: 1.0",
           "Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit", ""]
    lines, n, i = list(hdr), sum(len(h) + 2 for h in hdr), 0
    words = "the quick brown fox jumps over the lazy dog while the relay signs every message".split()
    while n < size:
        i += 1
        l = f"{i:04d} " + " ".join(words[(i + k) % len(words)] for k in range(12))
        l = l[:76]
        lines.append(l); n += len(l) + 2
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")   # LF: smtp-source -F appends CRLF to each line
    os.rename(path + ".tmp", path)
    return path


# ------------------------------------------------------------------ helpers
def wait_port(port, up=True, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            if up:
                return True
        except OSError:
            if not up:
                return True
        time.sleep(0.05)
    return False


def sink_reset():
    sh([f"{PEER_SCRIPTS}/setup.sh", "sink"])
    time.sleep(0.3)


def sink_count():
    try:
        tail = open(os.path.join(E["SINK_DIR"], "sink.counter"), "rb").read()[-200:].decode("latin-1")
    except OSError:
        return 0
    m = re.findall(r"mesg=(\d+)", tail)
    return int(m[-1]) if m else 0


def wait_sink(n, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sink_count() >= n:
            return True
        time.sleep(0.05)
    return False


def mem_of(pids):
    rss = pss = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]); break
        except OSError:
            pass
    return rss / 1024, pss / 1024


def tree_pids(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
                kids.setdefault(int(st[st.rfind(")") + 2:].split()[1]), []).append(int(d))
            except OSError:
                pass
    out, stack = [], [root]
    while stack:
        p = stack.pop(); out.append(p); stack.extend(kids.get(p, []))
    return out


def thread_cpu(pid):
    """CPU ticks of each thread of a process, by thread group: main (JS), libuv (fs, dns.lookup,
    crypto jobs), v8 (GC, compiler), other."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            st = open(f"/proc/{pid}/task/{t}/stat").read()
        except OSError:
            continue
        comm = st[st.find("(") + 1:st.rfind(")")]
        f = st[st.rfind(")") + 2:].split()
        grp = "main" if t == str(pid) else "libuv" if comm.startswith("libuv") else "v8" if comm.startswith(("V8", "DelayedTask")) else "other"
        u, s_ = out.get(grp, (0, 0))
        out[grp] = (u + int(f[11]), s_ + int(f[12]))
    return out


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def cpu_times():
    """(steal, total) jiffies of the whole machine, from /proc/stat's cpu line."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[7] if len(f) > 7 else 0, sum(f[:8])


def steal_pct(t0, t1):
    """Share of CPU time the hypervisor gave to other guests (a VM's 'st' in vmstat)."""
    return round(100 * (t1[0] - t0[0]) / max(1, t1[1] - t0[1]), 1)


# ------------------------------------------------------------------ the two relays
class DkimRelay:
    name = "dkim-relay"

    def __init__(self, build_dir, tmp):
        self.build_dir, self.tmp, self.proc, self.serial = build_dir, tmp, None, 0
        self.keys = {}
        for kind, sels in (("rsa", ["s1"]), ("dual", ["s1", "e1"])):
            d = os.path.join(tmp, f"keys-{kind}")
            os.makedirs(os.path.join(d, "example.test"), mode=0o700, exist_ok=True)
            for sel in sels:
                src = os.path.join(E["DKIM_DIR"], "s1.private" if sel == "s1" else "e1.pem")
                dst = os.path.join(d, "example.test", f"{sel}.key")
                # PKCS#8 PEM, as keys/README.md describes the store (OpenDKIM's key is PKCS#1)
                sh(["openssl", "pkey", "-in", src, "-out", dst])
                os.chmod(dst, 0o600)
            self.keys[kind] = d
        self.tls_key, self.tls_cert = os.path.join(tmp, "tls-key.pem"), os.path.join(tmp, "tls-cert.pem")
        sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=relay.example.test",
            "-keyout", self.tls_key, "-out", self.tls_cert])
        self.has_keys_command = "keys" in sh([NODE, "bin/dkim-relay.js", "--help"], check=False, cwd=build_dir).stdout
        for kind, d in self.keys.items():
            self.activate(d, ["s1"] + (["e1"] if kind == "dual" else []))

    def env(self, keys_dir, route="smarthost"):
        self.serial += 1
        data = os.path.join(self.tmp, f"data-{self.serial}")
        env = dict(os.environ,
                   RELAY_SUBMISSION_HOST="127.0.0.1", RELAY_SUBMISSION_PORT=E["RELAY_PORT"],
                   RELAY_DNS_SERVERS=f"{E['DNS_ADDR']}:{E['DNS_PORT']}", RELAY_MX_PORT=E["SINK_PORT"],
                   RELAY_DATA_DIR=data, RELAY_KEYS_DIR=keys_dir,
                   RELAY_TLS_KEY=self.tls_key, RELAY_TLS_CERT=self.tls_cert,
                   RELAY_USERS_FILE=os.path.join(self.tmp, "users.json"),
                   RELAY_HELO_NAME="relay.example.test", RELAY_LOCAL_ADDRESS="127.0.0.1",
                   # like the peer Postfix's relayhost = [sink]: the sink's address, no DNS
                   RELAY_SMARTHOST=f"{E['SINK_ADDR']}:{E['SINK_PORT']}" if route == "smarthost" else "")
        env.update(RELAY_EXTRA_ENV)
        return env, data

    def activate(self, keys_dir, selectors):
        """Key states (pending/active/retired) are being added to src/dkim: a key without a
        <selector>.json is a key from before them and signs; where `dkim-relay keys activate`
        exists, it is run too (it checks the record dnsmasq publishes)."""
        if not self.has_keys_command:
            return
        env, _ = self.env(keys_dir)
        for sel in selectors:
            r = sh([NODE, "bin/dkim-relay.js", "keys", "activate", "example.test", sel], check=False, cwd=self.build_dir, env=env)
            if r.returncode != 0:
                log(f"keys activate example.test {sel} failed: {r.stderr.strip()[:300]}")

    def start(self, case, profile_dir=None):
        env, data = self.env(self.keys[case.get("keys", "rsa")], case.get("route", "smarthost"))
        args = [NODE]
        if profile_dir:
            args += ["--cpu-prof", "--cpu-prof-dir", profile_dir]
        args += ["bin/dkim-relay.js", "serve"]
        self.logf = open(os.path.join(self.tmp, f"relay-{self.serial}.log"), "w")
        self.proc = subprocess.Popen(args, cwd=self.build_dir, env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        if not wait_port(int(E["RELAY_PORT"]), timeout=30) or self.proc.poll() is not None:
            raise RuntimeError(f"dkim-relay did not start, see {self.logf.name}")
        self.data = data

    def pids(self):
        return [self.proc.pid]

    def bench_run_args(self):
        return ["--relay-pids-cmd", f"echo {self.proc.pid}"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill(); self.proc.wait()
        self.proc = None
        self.logf.close()
        shutil.rmtree(self.data, ignore_errors=True)
        wait_port(int(E["RELAY_PORT"]), up=False)


class Postfix:
    name = "postfix"

    def pf(self, *args, check=True):
        return sh(["postfix", "-c", E["PF_CONF"], *args], check=check)

    def running(self):
        return self.pf("status", check=False).returncode == 0

    def start(self, case, profile_dir=None):
        if not self.running():
            self.pf("start")
        if not wait_port(int(E["RELAY_PORT"]), timeout=30):
            raise RuntimeError("postfix did not start")

    def master(self):
        return int(re.sub(r"\D", "", open(os.path.join(E["PF_SPOOL"], "pid", "master.pid")).read()))

    def pids(self):
        od = int(re.sub(r"\D", "", open(os.path.join(E["OD_DIR"], "opendkim.pid")).read()))
        return tree_pids(self.master()) + [od]

    def bench_run_args(self):
        return ["--postfix-master-pidfile", os.path.join(E["PF_SPOOL"], "pid", "master.pid"),
                "--opendkim-pidfile", os.path.join(E["OD_DIR"], "opendkim.pid")]

    def queue_count(self):
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(E["PF_SPOOL"], q)):
                n += len(files)
        return n

    def stop(self):
        for _ in range(300):
            if self.queue_count() == 0:
                break
            time.sleep(0.2)
        if self.running():
            self.pf("stop", check=False)
            for _ in range(100):
                if not self.running():
                    break
                time.sleep(0.1)
        wait_port(int(E["RELAY_PORT"]), up=False)


# ------------------------------------------------------------------ one run
def bench_run(relay, n, sessions, msg, reuse, label, timeout=300):
    cmd = [PY, f"{PEER_SCRIPTS}/bench_run.py", "--label", label, "--n", str(n), "--sessions", str(sessions),
           "--msg", msg, "--relay", f"{E['RELAY_ADDR']}:{E['RELAY_PORT']}",
           "--sink-counter", os.path.join(E["SINK_DIR"], "sink.counter"), "--timeout", str(timeout),
           "--source-opts=" + ("-d" if reuse else "")] + relay.bench_run_args()
    r = sh(cmd, check=False)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"label": label, "error": (r.stderr or r.stdout)[-500:]}


def verify(sample, expect_algs=None):
    r = sh([PY, f"{PEER_SCRIPTS}/verify_dkim.py", "--dir", E["SINK_MAIL"], "--sample", str(sample)], check=False)
    text = r.stdout.strip()
    ok = r.returncode == 0
    note = ""
    if expect_algs:
        m = re.search(r"a=(\S+)", text)
        # verify_dkim.py lists the a= of the first signature; dual signing is checked on the raw dumps
        note = dual_check(expect_algs)
        ok = ok and not note.startswith("MISSING")
    return {"ok": ok, "text": text + (f"\n  {note}" if note else "")}


def dual_check(algs):
    """Every sampled dump carries one DKIM-Signature per algorithm, each verified by dkimpy."""
    code = r'''
import dkim, glob, os, random, sys
sys.path.insert(0, sys.argv[1])
from verify_dkim import make_dnsfunc, strip_sink_dump
files = sorted(glob.glob(os.path.join(sys.argv[2], "**", "m.*"), recursive=True))
random.seed(2); files = random.sample(files, min(10, len(files)))
dnsf = make_dnsfunc("127.0.0.1", int(sys.argv[3])); bad = 0; seen = set()
for f in files:
    msg = strip_sink_dump(open(f, "rb").read())
    d = dkim.DKIM(msg)
    n = len([l for l in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if l.lower().startswith(b"dkim-signature:")])
    for i in range(n):
        ok = d.verify(idx=i, dnsfunc=dnsf)
        seen.add(d.signature_fields.get(b"a", b"?").decode())
        bad += 0 if ok else 1
print(f"{'OK' if bad == 0 else 'MISSING/FAILED'} dual check of {len(files)} messages: algorithms {sorted(seen)}, failed signatures {bad}")
'''
    r = sh([PY, "-c", code, PEER_SCRIPTS, E["SINK_MAIL"], E["DNS_PORT"]], check=False)
    out = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
    line = out[0]
    if not all(a in line for a in algs) or not line.startswith("OK"):
        return "MISSING " + line
    return line


def one_run(relay, case, run_no, quick, profile_dir=None):
    msg = message_file(case["size"])
    relay.start(case, profile_dir)
    try:
        # warm-up (see WARMUP); then a fresh sink
        sink_reset()
        warm = message_file(10240)
        bench_run(relay, case.get("warmup", QUICK_WARMUP if quick else WARMUP), 10, warm, True, "warmup", timeout=300)
        sink_reset()
        rss0, pss0 = mem_of(relay.pids())
        load0 = loadavg()
        cpu0 = cpu_times()
        thr0 = thread_cpu(relay.pids()[0]) if relay.name == "dkim-relay" else {}
        if "probe" in case:
            c, m = case["quick_probe" if quick else "probe"]
            r = sh([PY, os.path.join(HERE, "latency_probe.py"), "--relay", f"{E['RELAY_ADDR']}:{E['RELAY_PORT']}",
                    "--msg", msg, "--connections", str(c), "--per-connection", str(m)], check=False)
            try:
                res = json.loads(r.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                res = {"error": r.stderr[-500:]}
            res["delivered_all"] = wait_sink(c * m)
            vr = {"ok": True, "text": "(not verified: latency probe)"}
        else:
            n = case["quick"] if quick else case["n"]
            res = bench_run(relay, n, case["sessions"], msg, case["reuse"], case["id"],
                            timeout=600 if case["id"] == "big" else 300)
            vr = verify(1 if case["id"] == "big" else 20, expect_algs=("rsa-sha256", "ed25519-sha256") if case.get("keys") == "dual" else None)
        if thr0:
            thr1, clk = thread_cpu(relay.pids()[0]), os.sysconf("SC_CLK_TCK")
            res["thread_cpu_s"] = {g: [round((thr1[g][0] - thr0.get(g, (0, 0))[0]) / clk, 2), round((thr1[g][1] - thr0.get(g, (0, 0))[1]) / clk, 2)]
                                   for g in thr1}
        res.update(case=case["id"], relay=relay.name, run=run_no, rss_before_mb=round(rss0, 1), pss_before_mb=round(pss0, 1),
                   load_before=load0, load_after=loadavg(), steal_pct=steal_pct(cpu0, cpu_times()),
                   verify_ok=vr["ok"], verify=vr["text"])
        return res
    finally:
        relay.stop()


# ------------------------------------------------------------------ figures
def fig(rs, key):
    """key: a function of one result -> number or None"""
    vals = [v for v in (key(r) for r in rs) if v is not None]
    if not vals:
        return None
    return dict(med=statistics.median(vals), lo=min(vals), hi=max(vals), n=len(vals))


def fmt(f, prec=1, unit=""):
    if not f:
        return "n/a"
    if f["n"] == 1:
        return f"{f['med']:.{prec}f}{unit}"
    return f"{f['med']:.{prec}f}{unit} ({f['lo']:.{prec}f}-{f['hi']:.{prec}f})"


def cpu_ms(r):
    n = r.get("n")
    c = r.get("cpu_s") or {}
    tot = sum(c.get(k, 0) for k in ("relay", "postfix", "opendkim"))
    return tot * 1000 / n if n and tot else None


def rss(r):
    p = r.get("peak_sum_rss_mb") or {}
    return (p.get("relay", 0) + p.get("postfix", 0) + p.get("opendkim", 0)) or None


def pss(r):
    p = r.get("peak_sum_pss_mb") or {}
    return (p.get("relay", 0) + p.get("postfix", 0) + p.get("opendkim", 0)) or None


def rss_growth(r):
    peak = rss(r)
    hwm = (r.get("max_proc_hwm_mb") or {})
    return peak - r["rss_before_mb"] if peak is not None and r.get("rss_before_mb") is not None else None


def hwm_growth(r):
    h = (r.get("max_proc_hwm_mb") or {})
    v = max(h.values()) if h else None
    return v - r["rss_before_mb"] if v is not None and r.get("relay") == "dkim-relay" else None


def ok_run(r):
    if "accept_latency_ms" in r:
        return r.get("n_errors", 0) == 0 and r.get("delivered_all", True)
    return r.get("delivered", 0) >= r.get("n", 1) and r.get("source_rc") == 0


def ratio(a, b, pairs=None):
    if not a or not b or not b["med"]:
        return "n/a"
    text = f"{a['med'] / b['med']:.2f}x"
    if pairs and pairs["n"] > 1:
        text += f" (pairs {pairs['lo']:.2f}-{pairs['hi']:.2f})"
    return text


def pair_ratios(rs_a, rs_b, key, invert=False):
    """The ratio within each pair of runs made one after the other (run i of A with run i of B):
    slow changes of the machine (CPU steal, other guests) hit both sides of a pair alike."""
    b_by_run = {r.get("run"): key(r) for r in rs_b}
    vals = []
    for r in rs_a:
        a, b = key(r), b_by_run.get(r.get("run"))
        if a and b:
            vals.append(b / a if invert else a / b)
    return fig([{"v": v} for v in vals], lambda x: x["v"])


def runs_note(a, cases):
    """How many runs each case had, in words: "5 runs per relay for c20, c1; 3 for the others"."""
    if a.quick:
        return "quick mode: 1 run per relay per case"
    if a.runs:
        return f"{a.runs} runs per relay per case"
    by = {}
    for c in cases:
        if "probe" not in c:
            by.setdefault(c.get("runs", DEFAULT_RUNS), []).append(c["id"])
    parts = [f"{n} runs per relay for {', '.join(ids)}" for n, ids in sorted(by.items(), reverse=True) if n != DEFAULT_RUNS]
    return "; ".join(parts + [f"{DEFAULT_RUNS} for the others"]) if parts else f"{DEFAULT_RUNS} runs per relay per case"


def write_results(rows, meta, out_path, profile_md):
    by = {}
    discarded = [r for r in rows if r.get("discarded")]
    for r in rows:
        if not r.get("discarded"):
            by.setdefault((r["case"], r["relay"]), []).append(r)
    cases = {c["id"]: c for c in CASES}
    get = lambda cid, rel, key: fig(by.get((cid, rel), []), key)
    L = []
    L.append("# Benchmarks: dkim-relay against Postfix + OpenDKIM")
    L.append("")
    L.append(f"Measured {meta['date']} on the same machine, in the same run, relays interleaved (A B A B ...), "
             f"{meta['runs_note']}. Values: median (min-max) over the runs. Command: `{meta['command']}`.")
    L.append("")
    L.append("| case | dkim-relay | Postfix+OpenDKIM | ratio |")
    L.append("|---|---:|---:|---:|")
    e2e = lambda r: r.get("e2e_msg_s")
    acc = lambda r: r.get("accept_msg_s")

    def row(label, cid, key, prec=1, unit="", postfix=True, invert=False):
        if cid not in cases or not by.get((cid, "dkim-relay")):
            return
        a = get(cid, "dkim-relay", key)
        b = get(cid, "postfix", key) if postfix else None
        pairs = pair_ratios(by.get((cid, "dkim-relay"), []), by.get((cid, "postfix"), []), key, invert)
        rt = ratio(b, a, pairs) if invert else ratio(a, b, pairs)
        L.append(f"| {label} | {fmt(a, prec, unit)} | {fmt(b, prec, unit) if postfix else 'n/a'} | {rt if postfix else 'n/a'} |")

    row("20 sessions, 10 KB, end to end msg/s", "c20", e2e)
    row("1 session, 10 KB, end to end msg/s", "c1", e2e)
    row("20 sessions, 10 KB, connection reuse, end to end msg/s", "c20d", e2e)
    row("1 session, 10 KB, connection reuse, end to end msg/s", "c1d", e2e)
    row("20 sessions, 1 KB, connection reuse, end to end msg/s", "k1", e2e)
    row("20 sessions, 100 KB, connection reuse, end to end msg/s", "k100", e2e)
    row("20 sessions, 10 KB, RSA-2048 + Ed25519, connection reuse, end to end msg/s", "dual", e2e, postfix=False)
    row("20 sessions, 10 KB, just started (100-message warm-up), end to end msg/s", "c20cold", e2e)
    row("20 sessions, 10 KB, MX lookup per message (TTL 0), end to end msg/s", "c20mx", e2e, postfix=False)
    row("CPU ms per message, 20 sessions, 10 KB (lower is better; ratio Postfix/dkim-relay)", "c20", cpu_ms, 2, invert=True)
    row("CPU ms per message, 20 sessions, 10 KB, connection reuse", "c20d", cpu_ms, 2, invert=True)
    row("peak RSS MB, 20 sessions, 10 KB (Postfix: sum over its processes + OpenDKIM)", "c20", rss, 1, invert=True)
    row("peak PSS MB, 20 sessions, 10 KB", "c20", pss, 1, invert=True)
    row("accept latency p50 ms, 20 connections, 10 KB", "lat", lambda r: (r.get("accept_latency_ms") or {}).get("p50"), 1, invert=True)
    row("accept latency p99 ms, 20 connections, 10 KB", "lat", lambda r: (r.get("accept_latency_ms") or {}).get("p99"), 1, invert=True)
    row("accept latency p50 ms, 1 connection, 10 KB", "lat1", lambda r: (r.get("accept_latency_ms") or {}).get("p50"), 2, invert=True)
    row("accept latency p99 ms, 1 connection, 10 KB", "lat1", lambda r: (r.get("accept_latency_ms") or {}).get("p99"), 2, invert=True)
    row("one 50 MB message, end to end s", "big", lambda r: r.get("t_e2e_s"), 2, invert=True)
    row("one 50 MB message, RSS growth MB (peak sampled RSS - RSS before)", "big", rss_growth, 1, invert=True)
    L.append("")
    L.append("Ratios are dkim-relay/Postfix for rates and Postfix/dkim-relay for costs, so above 1 means dkim-relay is better: "
             "the ratio of the medians, then in parentheses the lowest and highest ratio within a pair of runs made one right after the other.")
    L.append("")

    # ---- targets
    L.append("## Targets of issue 7")
    L.append("")
    L.append("| target | measured | met? |")
    L.append("|---|---|---|")

    def target(text, cid, key, test, unit="", prec=1, against=None):
        a = get(cid, "dkim-relay", key)
        if not a:
            L.append(f"| {text} | not measured | - |"); return
        if against:
            b = get(cid, "postfix", key)
            if not b:
                L.append(f"| {text} | not measured | - |"); return
            rt = a["med"] / b["med"]
            pairs = pair_ratios(by.get((cid, "dkim-relay"), []), by.get((cid, "postfix"), []), key)
            spread = f"; pairs {pairs['lo']:.2f}-{pairs['hi']:.2f}x" if pairs and pairs["n"] > 1 else ""
            L.append(f"| {text} | {rt:.2f}x ({fmt(a, prec)} vs {fmt(b, prec)} msg/s{spread}) | {'met' if rt >= against else 'NOT met'} |")
        else:
            L.append(f"| {text} | {fmt(a, prec, unit)} | {'met' if test(a['med']) else 'NOT met'} |")

    target("end to end >= 2x Postfix+OpenDKIM, 20 sessions (one connection per message)", "c20", e2e, None, against=2)
    target("end to end >= 2x Postfix+OpenDKIM, 20 sessions (connection reuse)", "c20d", e2e, None, against=2)
    target("end to end >= 1.5x Postfix+OpenDKIM, 1 session (one connection per message)", "c1", e2e, None, against=1.5)
    target("end to end >= 1.5x Postfix+OpenDKIM, 1 session (connection reuse)", "c1d", e2e, None, against=1.5)
    target("CPU <= 1.5 ms per message, 20 sessions (one connection per message)", "c20", cpu_ms, lambda v: v <= 1.5, " ms", 2)
    target("CPU <= 1.5 ms per message, 20 sessions (connection reuse)", "c20d", cpu_ms, lambda v: v <= 1.5, " ms", 2)
    target("peak RSS <= 120 MB under the 20-session load (one connection per message)", "c20", rss, lambda v: v <= 120, " MB")
    target("peak RSS <= 120 MB under the 20-session load (connection reuse)", "c20d", rss, lambda v: v <= 120, " MB")
    target("50 MB message relayed with < 64 MB RSS growth", "big", rss_growth, lambda v: v < 64, " MB")
    L.append("")

    # ---- machine
    L.append("## Machine and software")
    L.append("")
    for k in ("machine", "software", "load", "shared", "revision", "runs_detail"):
        if meta.get(k):
            L.append(f"- {meta[k]}")
    L.append(f"- runs during which CPU steal exceeded {STEAL_LIMIT_PCT:g} % were measured again (at most {STEAL_RETRIES} more times; the "
             f"last try counts whatever its steal) and are left out of the figures: "
             + (", ".join(f"{r['case']} {r['relay']} run {r.get('run')} ({r['discarded']})" for r in discarded) or "none") + "")
    L.append("")

    # ---- per case details
    L.append("## Every case")
    L.append("")
    L.append("accepted = smtp-source done (every message answered 250); delivered = smtp-sink counted every message. "
             "CPU = user+system time of the relay's processes over the run (Postfix: master and all children + OpenDKIM) / messages. "
             "RSS/PSS: peak of the summed samples (every 200 ms). busy = whole machine, % of 2 cores (includes smtp-source, smtp-sink and anything else running); CPU steal = time the hypervisor gave this VM's vCPUs to other guests during the run (/proc/stat): the same work then takes longer and, as measured from inside, more CPU.")
    L.append("")
    L.append("| case | relay | runs ok | msgs/run | accepted msg/s | delivered msg/s | CPU ms/msg | peak RSS MB | peak PSS MB | machine busy % | CPU steal % | DKIM verified |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in CASES:
        if "probe" in c:
            continue
        for rel in RELAYS:
            rs = by.get((c["id"], rel))
            if not rs:
                continue
            okn = sum(1 for r in rs if ok_run(r))
            ver = "yes" if all(r.get("verify_ok") for r in rs) else "NO"
            L.append(f"| {c['label']} | {NAMES[rel]} | {okn}/{len(rs)} | {rs[0].get('n', '?')} | {fmt(fig(rs, acc))} | {fmt(fig(rs, e2e))} | "
                     f"{fmt(fig(rs, cpu_ms), 2)} | {fmt(fig(rs, rss))} | {fmt(fig(rs, pss))} | {fmt(fig(rs, lambda r: r.get('machine_busy_pct_of_2cores')), 0)} | {fmt(fig(rs, lambda r: r.get('steal_pct')), 1)} | {ver} |")
    L.append("")
    thr_cases = [(c, by.get((c["id"], "dkim-relay"))) for c in CASES if any(r.get("thread_cpu_s") and r.get("n") for r in by.get((c["id"], "dkim-relay"), []))]
    if thr_cases:
        L.append("dkim-relay's CPU by thread, ms per message (user + system, median over runs): main = the JavaScript thread; "
                 "libuv = the thread pool doing the fs calls (write, fsync, rename) and dns.lookup; v8 = GC and compiler threads.")
        L.append("")
        L.append("| case | main user | main sys | libuv user | libuv sys | v8 + other | total |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for c, rs in thr_cases:
            rs = [r for r in rs if r.get("thread_cpu_s") and r.get("n")]
            g = lambda grp, i: fig(rs, lambda r: (r["thread_cpu_s"].get(grp, [0, 0])[i]) * 1000 / r["n"])
            oth = fig(rs, lambda r: sum(sum(v) for k, v in r["thread_cpu_s"].items() if k not in ("main", "libuv")) * 1000 / r["n"])
            tot = fig(rs, lambda r: sum(sum(v) for v in r["thread_cpu_s"].values()) * 1000 / r["n"])
            L.append(f"| {c['label']} | {fmt(g('main', 0), 2)} | {fmt(g('main', 1), 2)} | {fmt(g('libuv', 0), 2)} | {fmt(g('libuv', 1), 2)} | {fmt(oth, 2)} | {fmt(tot, 2)} |")
        L.append("")
    lat_rows = [(c, rel, by.get((c["id"], rel))) for c in CASES if "probe" in c for rel in RELAYS if by.get((c["id"], rel))]
    if lat_rows:
        L.append("Accept latency: `bench/latency_probe.py`, C connections each sending its messages one after the other "
                 "(no pipelining), time from the final `.` to the 250 reply (dkim-relay: signed and fsynced; Postfix: queue file fsynced, "
                 "OpenDKIM asked over the milter).")
        L.append("")
        L.append("| case | relay | p50 ms | p90 ms | p99 ms | max ms | client msg/s |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for c, rel, rs in lat_rows:
            g = lambda k: fig(rs, lambda r: (r.get("accept_latency_ms") or {}).get(k))
            L.append(f"| {c['label']} | {NAMES[rel]} | {fmt(g('p50'), 2)} | {fmt(g('p90'), 2)} | {fmt(g('p99'), 2)} | {fmt(g('max'), 1)} | "
                     f"{fmt(fig(rs, lambda r: r.get('client_msg_s')))} |")
        L.append("")
    if by.get(("big", "dkim-relay")):
        L.append("The 50 MB message (" + f"{os.path.getsize(message_file(50_000_000)) / 1e6:.1f} MB file" + "):")
        L.append("")
        L.append("| relay | accepted s | end to end s | RSS before MB | peak RSS MB | growth MB | PSS growth MB | process high-water mark growth MB |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for rel in RELAYS:
            rs = by.get(("big", rel))
            if rs:
                L.append(f"| {NAMES[rel]} | {fmt(fig(rs, lambda r: r.get('t_accept_s')), 2)} | {fmt(fig(rs, lambda r: r.get('t_e2e_s')), 2)} | "
                         f"{fmt(fig(rs, lambda r: r.get('rss_before_mb')))} | {fmt(fig(rs, rss))} | {fmt(fig(rs, rss_growth))} | "
                         f"{fmt(fig(rs, lambda r: pss(r) - r['pss_before_mb'] if pss(r) else None))} | "
                         f"{fmt(fig(rs, hwm_growth)) if rel == 'dkim-relay' else 'n/a (many processes)'} |")
        L.append("")
        L.append("Postfix: `message_size_limit` raised to 60000000 for this run (its default, 10240000, refuses the message); "
                 "its growth is summed over every process, including the smtpd/cleanup/smtp processes started for the message.")
        L.append("")
    fails = [r for r in rows if not ok_run(r) or not r.get("verify_ok")]
    if fails:
        L.append("Runs with problems:")
        L.append("")
        for r in fails:
            L.append(f"- {r['case']} {r['relay']} run {r.get('run')}: delivered {r.get('delivered')}/{r.get('n')}, "
                     f"smtp-source rc {r.get('source_rc')} {r.get('source_err', '')[:200]!r} {r.get('error', '')[:200]!r}; verify: {r.get('verify', '')[:300]!r}")
        L.append("")
    L.append("DKIM verification (python3-dkim, keys from dnsmasq) of the last run of each case:")
    L.append("")
    L.append("```")
    seen = set()
    for r in reversed(rows):
        k = (r["case"], r["relay"])
        if k in seen or "probe" in cases.get(r["case"], {}):
            continue
        seen.add(k)
        L.append(f"{r['case']} {r['relay']}: " + r.get("verify", "").replace("\n", "\n    "))
    L.append("```")
    L.append("")
    if profile_md:
        L.append("## Profile (generated)")
        L.append("")
        L.extend(profile_md)
        L.append("")
    L.append(f"Raw figures of this run: `{os.path.basename(os.path.splitext(out_path)[0])}.jsonl` next to this file (one JSON object per run, from `../shared/peer/bench_run.py`).")
    L.append("")
    # the hand-written analysis survives a rerun
    analysis = ""
    if os.path.exists(out_path):
        old = open(out_path).read()
        i = old.find(ANALYSIS_MARK)
        if i != -1:
            analysis = old[i:]
    L.append(analysis or (ANALYSIS_MARK + "\n## Where the time goes\n\n(written by hand after reading the profile; not regenerated)\n"))
    with open(out_path, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


ANALYSIS_MARK = "<!-- hand-written analysis below: kept when bench.py rewrites this file -->"


# ------------------------------------------------------------------ machine facts
def machine_facts():
    model = ""
    for line in sh("lscpu", check=False).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = ""
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    speed = sh("openssl speed -seconds 1 rsa2048 2>/dev/null | grep -E '^rsa 2048'", check=False).stdout.split()
    rsa = f", openssl rsa2048 {speed[-2]} sign/s per core" if len(speed) >= 2 else ""
    return f"machine: {os.cpu_count()} CPUs (nproc), {model}, {mem} memory, Linux {platform.release()}{rsa}"


def software_facts(build_dir):
    node = sh([NODE, "--version"]).stdout.strip()
    pf = sh("postconf -d -h mail_version", check=False).stdout.strip()
    od = sh("opendkim -V 2>&1 | head -1", check=False).stdout.strip()
    deps = []
    for d in ("smtp-server", "mailauth", "nodemailer"):
        try:
            deps.append(f"{d} {json.load(open(os.path.join(REPO, 'node_modules', d, 'package.json')))['version']}")
        except OSError:
            pass
    return f"software: Node.js {node} ({', '.join(deps)}); Postfix {pf}; {od}; load from Postfix's smtp-source, sink smtp-sink, DNS dnsmasq, all on 127.0.0.1"


def build(ref, tmp):
    if not ref:
        log("npm run build (working tree)")
        r = sh(["npm", "run", "build", "--silent"], check=False, cwd=REPO)
        if r.returncode != 0:
            sys.exit(f"npm run build failed:\n{r.stdout}{r.stderr}\nThe working tree does not build; try `npm run bench -- --ref HEAD`.")
        dirty = sh(["git", "status", "--porcelain", "--", "src", "bin", "package.json"], check=False, cwd=REPO).stdout.strip()
        rev = sh(["git", "rev-parse", "--short", "HEAD"], cwd=REPO).stdout.strip()
        return REPO, f"revision: working tree at {rev}" + (" with uncommitted changes in src/" if dirty else "")
    rev = sh(["git", "rev-parse", "--short", ref], cwd=REPO).stdout.strip()
    d = os.path.join(tmp, f"src-{rev}")
    os.makedirs(d)
    log(f"building {ref} ({rev}) in {d}")
    subprocess.run(f"git -C '{REPO}' archive '{rev}' | tar -x -C '{d}'", shell=True, check=True)
    os.symlink(os.path.join(REPO, "node_modules"), os.path.join(d, "node_modules"))
    r = sh([os.path.join(REPO, "node_modules", ".bin", "tsc"), "-p", "tsconfig.build.json"], check=False, cwd=d)
    if r.returncode != 0:
        sys.exit(f"build of {ref} failed:\n{r.stdout}{r.stderr}")
    subject = sh(["git", "log", "-1", "--format=%s", rev], cwd=REPO).stdout.strip()
    if len(subject) > 80:
        subject = subject[:80].rsplit(" ", 1)[0] + " ..."
    return d, f"revision: {rev} ({subject}), built from `git archive` (uncommitted work of others excluded)"


def profile(relay, quick, tmp):
    """node --cpu-prof under the 20-session loads; Markdown summaries."""
    md = []
    for cid in ("c20", "c20d"):
        case = next(c for c in CASES if c["id"] == cid)
        pdir = os.path.join(tmp, f"prof-{cid}")
        os.makedirs(pdir, exist_ok=True)
        log(f"profiling dkim-relay, case {cid}")
        r = one_run(relay, case, 0, quick, profile_dir=pdir)
        profs = sorted(os.listdir(pdir))
        if not profs:
            md.append(f"(no profile written for {cid})"); continue
        keep = os.path.join(WORK, f"{cid}.cpuprofile")
        shutil.copy(os.path.join(pdir, profs[-1]), keep)
        s = sh([NODE, os.path.join(HERE, "profile-summary.js"), keep, "--top", "20"], check=False).stdout
        md.append(f"### {case['label']}, {r.get('n')} messages, under `node --cpu-prof` "
                  f"({r.get('e2e_msg_s')} msg/s end to end with the profiler on); profile kept in `{keep}`")
        md.append("")
        md.append(s.strip())
        md.append("")
    return md


def main():
    global E, RELAY_EXTRA_ENV
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run per case, fewer messages")
    ap.add_argument("--runs", type=int, help="runs per relay per case (default 3; --quick 1)")
    ap.add_argument("--cases", help="comma separated case ids (default all)")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--ref", help="measure this git revision (git archive + build in a temp dir) instead of the working tree")
    ap.add_argument("--no-profile", action="store_true", help="skip the node --cpu-prof runs")
    ap.add_argument("--profile-only", action="store_true", help="only the node --cpu-prof runs; summaries on stdout")
    ap.add_argument("--relays", default="dkim-relay,postfix", help="which relays to run (dkim-relay only: for experiments)")
    ap.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from the .jsonl of the last run (after editing the report code)")
    ap.add_argument("--keep", action="store_true", help="leave the peer services running afterwards")
    ap.add_argument("--out", help="results file (default bench/RESULTS.md; with --cases, --relays or --relay-env: "
                    f"{WORK}/partial-RESULTS.md, so a partial run does not replace the committed figures)")
    ap.add_argument("--relay-env", default="", help="extra environment of dkim-relay, K=V,K=V (an experiment: say so in the results)")
    a = ap.parse_args()
    if a.list:
        for c in CASES:
            print(f"{c['id']:6s} {c['label']}")
        return 0
    if not a.out:
        partial = a.cases or a.relays != "dkim-relay,postfix" or a.relay_env
        a.out = os.path.join(WORK, "partial-RESULTS.md") if partial else os.path.join(HERE, "RESULTS.md")
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
    jsonl = os.path.splitext(a.out)[0] + ".jsonl"
    if a.report_only:
        E = peer_env()
        lines = [json.loads(l) for l in open(jsonl) if l.strip()]
        saved = next(l for l in lines if "_meta" in l)
        write_results([l for l in lines if "_meta" not in l], saved["_meta"], a.out, saved["_profile"])
        log(f"rewrote {a.out} from {jsonl}")
        return 0
    if os.geteuid() != 0:
        sys.exit("run as root: ../shared/peer/setup.sh installs and starts Postfix, OpenDKIM, dnsmasq and smtp-sink")
    if not os.path.exists(os.path.join(PEER_SCRIPTS, "setup.sh")):
        sys.exit(f"{PEER_SCRIPTS}/setup.sh not found: ../shared/peer must sit beside the repository (or set PEER_SCRIPTS)")
    RELAY_EXTRA_ENV = dict(kv.split("=", 1) for kv in a.relay_env.split(",") if kv)
    command = "npm run bench" + (" -- " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    t_start = time.monotonic()
    E = peer_env()
    os.makedirs(WORK, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=WORK)
    build_dir, revision = build(a.ref, tmp)

    log("setup.sh start")
    r = sh([f"{PEER_SCRIPTS}/setup.sh", "start"], check=False)
    if r.returncode != 0:
        sys.exit(f"setup.sh start failed:\n{r.stderr[-2000:]}")
    # a 50 MB message is over Postfix's default message_size_limit (10240000)
    sh(["postconf", "-c", E["PF_CONF"], "-e", "message_size_limit=60000000"])
    sh(["postfix", "-c", E["PF_CONF"], "reload"], check=False)
    pf, dr = Postfix(), None
    uptime0 = sh("uptime", check=False).stdout.strip()
    rows, profile_md = [], []
    try:
        dr = DkimRelay(build_dir, tmp)
        pf.stop()
        selected = [c for c in CASES if not a.cases or c["id"] in a.cases.split(",")]
        if a.profile_only:
            selected = []
        for case in selected:
            runs = a.runs or (case.get("quick_runs", 1) if a.quick else case.get("runs", DEFAULT_RUNS))
            relays = [x for x in case.get("relays", RELAYS) if x in a.relays.split(",")]
            for run_no in range(1, runs + 1):
                for rel in (dr, pf):
                    if rel.name not in relays:
                        continue
                    for attempt in range(1 + STEAL_RETRIES):
                        log(f"{case['id']} ({case['label']}) run {run_no}/{runs}: {rel.name}" + (f" (again: CPU steal)" if attempt else ""))
                        try:
                            res = one_run(rel, case, run_no, a.quick)
                        except Exception as e:  # a broken run is reported, the others go on
                            res = {"case": case["id"], "relay": rel.name, "run": run_no, "error": repr(e)}
                        brief = {k: res.get(k) for k in ("accept_msg_s", "e2e_msg_s", "cpu_s", "peak_sum_rss_mb", "accept_latency_ms", "t_e2e_s", "steal_pct", "verify_ok", "error") if res.get(k) is not None}
                        log(f"  {json.dumps(brief)}")
                        # The hypervisor took the vCPUs from this run: measure it again (the last try counts whatever it shows).
                        if (res.get("steal_pct") or 0) > STEAL_LIMIT_PCT and attempt < STEAL_RETRIES:
                            res["discarded"] = f"CPU steal {res['steal_pct']} %"
                            rows.append(res)
                            continue
                        rows.append(res)
                        break
        profile_md = [] if a.no_profile else profile(dr, a.quick, tmp)
    finally:
        if dr and dr.proc:
            dr.stop()
        uptime1 = sh("uptime", check=False).stdout.strip()
        if not a.keep:
            sh([f"{PEER_SCRIPTS}/setup.sh", "stop"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)   # profiles were copied to WORK
    minutes = (time.monotonic() - t_start) / 60
    if a.profile_only:
        print("\n".join(profile_md))
    if rows:
        load_vals = [float(r["load_before"]) for r in rows if r.get("load_before")]
        steal_vals = [r["steal_pct"] for r in rows if r.get("steal_pct") is not None]
        meta = dict(
            date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            command=command,
            runs_note=runs_note(a, selected) + f", whole bench {minutes:.1f} min",
            machine=machine_facts(),
            software=software_facts(build_dir),
            revision=revision,
            load=f"load: `{uptime0}` at the start, `{uptime1}` at the end; 1-minute load average before each run: "
                 f"median {statistics.median(load_vals):.2f}, max {max(load_vals):.2f}"
                 + (f"; CPU steal during the runs (time the hypervisor gave this VM's 2 vCPUs to other guests, "
                    f"/proc/stat): median {statistics.median(steal_vals):.1f} %, max {max(steal_vals):.1f} %" if steal_vals else "")
                 if load_vals else "",
            shared=("the machine was shared: other developers ran builds and tests during this run (load averages above; the "
                    "'machine busy' column shows the whole machine, not just the relays), so absolute rates carry noise; "
                    "the interleaving spreads it over both relays" if load_vals and max(load_vals) > 1.0 else ""),
            runs_detail="messages per run: " + ", ".join(
                f"{c['id']} {(c['quick'] if a.quick else c['n']) if 'probe' not in c else 'x'.join(map(str, c['quick_probe' if a.quick else 'probe']))}"
                for c in CASES) + " (each run on a freshly started relay after a warm-up of "
                f"{QUICK_WARMUP if a.quick else WARMUP} messages over 10 reused connections (c20cold: 100), sink emptied before the measured run); "
                "both deliver to the sink at 127.0.0.1:2526 without DNS: Postfix by relayhost [127.0.0.1]:2526, dkim-relay by its smarthost "
                "setting (c20mx: by MX lookup, MX of example.test from dnsmasq); "
                "dkim-relay: log level info to a file, spool fsync on (file + folder); "
                "Postfix: OpenDKIM milter over a unix socket, queue fsync on"
                + (f"; EXPERIMENT, dkim-relay run with extra environment {a.relay_env}" if a.relay_env else ""),
        )
        with open(jsonl, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.write(json.dumps({"_meta": meta, "_profile": profile_md}) + "\n")
        write_results(rows, meta, a.out, profile_md)
        log(f"wrote {a.out} ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
