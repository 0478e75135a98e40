#!/usr/bin/env python3
"""make bench: how many bw calls, logins and seconds colibri-vault spends on a boot storm.

A benchmark, not a test: it prints numbers and the goals of issue 5 next to them, and never
fails because a goal is missed (it fails only when it cannot measure). It runs the RELEASE
binary against the fake bw of the integration tests (tests/it/support/fake_bw.py, a Python fake
of bw 2026.6.0 that records every call in calls.jsonl) with a fixed latency per bw call, on
throwaway hosts laid out as tests/it/support/host.rs does (jail root base, provider env 0600,
database, state and run directories in a temporary directory; the binary gets a clean
environment with only PATH and COLIBRI_* variables).

For every N (default 1, 10, 50 tenants), each on a fresh host:
  (a) N sequential `hook start`, one per jail, each in its own vault session (the per-call
      design; COLIBRI_FRESH_FOR=0);
  (b) `provision --all --boot`, then N sequential `hook start` (they should find fresh files);
  (c) N concurrent `hook start` (group commit: one holder, the rest spool their request).
Each row gives bw calls and logins (from calls.jsonl), the wall time, the same calls priced at
the real CLI's measured cost per step (../shared/reference/bw-cli.md section 2), and an
estimate of the wall time with the real CLI (measured wall - time spent inside the fake's calls
+ real-CLI cost of those calls). Then the median wall time of `hook start` for a jail without a
tenant (database present), and colibri-vault's own peak RSS.

Peak RSS, colibri-vault's own: wait4(2)'s ru_maxrss cannot be used directly. It includes the
process's reaped children (bw, here a Python process), and on Linux also the memory the process
had before exec, which for a child spawned by this Python script is this script's RSS (a child
that runs /bin/true shows 13 MiB). So: every colibri-vault process of the scenarios is sampled
from /proc/<pid>/status VmHWM (its own high-water mark since exec) every 2 ms while it runs
(Linux); and the runs that spawn no bw (no-tenant hook, fresh hook, `provision --all` with the
`dir` source for the largest N: the batch pipeline without bw) are measured exactly through
/usr/bin/time (GNU `-f %M` or BSD `-l`), whose own footprint before exec is about 1 MiB.

    python3 scripts/bench.py [--bin target/release/colibri-vault] [--latency 0.2]
                             [--tenants 1,10,50] [--runs 200] [--json FILE] [--keep]

Environment fallbacks: BENCH_LATENCY, BENCH_TENANTS, BENCH_RUNS. Stdlib only.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_BW = os.path.join(ROOT, "tests", "it", "support", "fake_bw.py")
PATH = "/usr/local/bin:/usr/bin:/bin"

# The fake's default account (tests/it/support/fake_bw.rs, `Account::default`).
USER_ID = "26fb04eb-a416-4088-a7b1-8d954bc53d3f"
ACCOUNT = {
    "email": "acceptance@example.com",
    "userId": USER_ID,
    "clientId": "user." + USER_ID,
    "clientSecret": "FakeClientSecret0123456789abcd",
    "masterPassword": "fake master password 42",
}
ORGANIZATION = {"id": "eb1789ac-94f7-47e4-a27f-4db7bd879610", "name": "Hive"}
SERVER_URL = "https://127.0.0.1:8222"

# Seconds per call of the real bw 2026.6.0 on a 2-core machine (bw-cli.md section 2: the
# per-step means of the full cycle; `config server` 0.7-1.0 s; status and sync from the table).
REAL_COST = {
    "config": 0.9,
    "login": 3.08,
    "unlock": 3.63,
    "list collections": 3.66,
    "list items": 3.72,
    "lock": 2.22,
    "logout": 2.51,
    "status": 1.83,
    "sync": 1.83,
}
UNKNOWN_COST = 3.0

GOAL_HOOK_MS = 5.0
GOAL_RSS_MIB = 16.0
GOAL_CONCURRENT_RATIO = 1.5


def env_default(name, fallback):
    value = os.environ.get(name)
    return value if value not in (None, "") else fallback


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "colibri-vault"),
                   help="the colibri-vault binary (default: the release build)")
    p.add_argument("--latency", type=float, default=float(env_default("BENCH_LATENCY", "0.2")),
                   help="seconds every fake bw call sleeps (default 0.2; env BENCH_LATENCY)")
    p.add_argument("--tenants", default=env_default("BENCH_TENANTS", "1,10,50"),
                   help="comma-separated tenant counts (default 1,10,50; env BENCH_TENANTS)")
    p.add_argument("--runs", type=int, default=int(env_default("BENCH_RUNS", "200")),
                   help="runs of the no-tenant hook (default 200, at least 200 for the goal; env BENCH_RUNS)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary hosts (their path is printed)")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    try:
        args.tenants = [int(n) for n in args.tenants.split(",") if n.strip()]
    except ValueError:
        p.error("--tenants: comma-separated integers, e.g. 1,10,50")
    if not args.tenants or min(args.tenants) < 1:
        p.error("--tenants: at least one count, each >= 1")
    if args.latency < 0 or args.runs < 1:
        p.error("--latency must be >= 0 and --runs >= 1")
    if not os.access(args.bin, os.X_OK):
        p.error("%s is not an executable; build it first (make bench does)" % args.bin)
    return args


def python3():
    """An absolute python3 for the fake's #! line (bw runs with a fixed PATH), as fake_bw.rs."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.isfile(candidate):
            return candidate
    return sys.executable


class RssSampler:
    """Samples VmHWM (the process's own peak RSS, children excluded) of live pids (Linux /proc)."""

    def __init__(self, interval=0.002):
        self.available = os.path.exists("/proc/self/status")
        self.interval = interval
        self.pids = set()
        self.peak = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = None

    def start(self):
        if self.available:
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.thread.start()

    def add(self, pid):
        with self.lock:
            self.pids.add(pid)

    def remove(self, pid):
        with self.lock:
            self.pids.discard(pid)

    def sample(self, pid):
        try:
            with open("/proc/%d/status" % pid, "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        kib = int(line.split()[1])
                        if kib > self.peak.get(pid, 0):
                            self.peak[pid] = kib
                        return
        except (OSError, ValueError, IndexError):
            pass

    def loop(self):
        while not self.stop.is_set():
            with self.lock:
                pids = list(self.pids)
            for pid in pids:
                self.sample(pid)
            time.sleep(self.interval)

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join()


class Runner:
    """Starts colibri-vault processes; the sampler watches each while it runs."""

    def __init__(self, binary):
        self.binary = binary
        self.sampler = RssSampler()
        self.sampler.start()
        self.scenario = {}  # pid -> scenario tag, for every sampled process

    def spawn(self, host, args, extra_env=None, stderr_path=None, sample=True, program=None):
        """Starts colibri-vault with `args` (under `program`, e.g. time(1), if given)."""
        argv = (program or []) + [self.binary] + list(args)
        return self.spawn_argv(host, argv, extra_env, stderr_path, sample)

    def spawn_argv(self, host, argv, extra_env=None, stderr_path=None, sample=True):
        env = dict(host.env)
        env.update(extra_env or {})
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, stderr_path or "/dev/null",
             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        ]
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        if sample:
            self.sampler.add(pid)
        return pid

    def wait(self, pid, scenario):
        if pid in self.sampler.pids:
            # Stop sampling once it has exited but before it is reaped, so that its pid cannot
            # have been reused by another process by then.
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            self.sampler.remove(pid)
            self.scenario[pid] = scenario
        _, status, _ = os.wait4(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def run(self, host, args, scenario, extra_env=None, stderr_path=None, sample=True):
        return self.wait(self.spawn(host, args, extra_env, stderr_path, sample), scenario)

    def exact_rss(self, host, args, extra_env=None, stderr_path=None):
        """(exit status, peak RSS in KiB) of one run through /usr/bin/time, or (status, None)."""
        out = os.path.join(host.dir, "time.out")
        code = None
        for program, parse in TIME_VARIANTS:
            if os.path.exists(out):
                os.unlink(out)
            pid = self.spawn(host, args, extra_env, stderr_path, sample=False, program=program + ["-o", out])
            code = self.wait(pid, "exact")
            try:
                with open(out, encoding="utf-8", errors="replace") as f:
                    kib = parse(f.read())
            except OSError:
                kib = None
            if kib is not None:
                return code, kib
        return code, None


def parse_gnu_time(text):
    lines = text.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].strip().isdigit() else None


def parse_bsd_time(text):
    for line in text.splitlines():
        if "maximum resident set size" in line:
            value = int(line.split()[0])
            return value / 1024 if sys.platform == "darwin" else value
    return None


# GNU time (Linux) prints ru_maxrss with -f %M; BSD time prints the whole rusage with -l.
TIME_VARIANTS = (
    (["/usr/bin/time", "-f", "%M"], parse_gnu_time),
    (["/usr/bin/time", "-l"], parse_bsd_time),
)


class Host:
    """A throwaway host with the bw source served by the fake bw and `names` registered."""

    def __init__(self, runner, label, names, latency):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="colibri-bench-%s-" % label))
        self.base = os.path.join(self.dir, "jails")
        self.fake_dir = os.path.join(self.dir, "fakebw")
        self.logs = os.path.join(self.dir, "logs")
        for d in (self.base, self.fake_dir, self.logs, os.path.join(self.dir, "etc")):
            os.makedirs(d)
        self.names = names
        self.install_fake(latency)
        provider_env = os.path.join(self.dir, "etc", "provider.env")
        # The bw source, as tests/it/vault.rs writes it.
        write_private(provider_env, "".join((
            "BW_CLIENTID=%s\n" % ACCOUNT["clientId"],
            "BW_CLIENTSECRET=%s\n" % ACCOUNT["clientSecret"],
            "BW_PASSWORD='%s'\n" % ACCOUNT["masterPassword"],
            "BW_SERVER=%s\n" % SERVER_URL,
            "COLIBRI_BW=%s\n" % os.path.join(self.fake_dir, "bw"),
        )))
        self.env = {
            "PATH": PATH,
            "COLIBRI_PROVIDER_ENV": provider_env,
            "COLIBRI_DB": os.path.join(self.dir, "db", "colibri.sqlite"),
            "COLIBRI_JAIL_ROOT_BASE": self.base,
            "COLIBRI_STATE_DIR": os.path.join(self.dir, "state"),
            "COLIBRI_RUN_DIR": os.path.join(self.dir, "run"),
        }
        owner = "%d:%d" % (os.geteuid(), os.getegid())
        for name in names:
            root = self.root_of(name)
            os.makedirs(root, mode=0o755)
            code = runner.run(self, ["tenant", "add", name, "--root", root, "--owner", owner], "setup",
                              stderr_path=self.log("tenant-add"), sample=False)
            if code != 0:
                sys.exit("bench: tenant add %s failed (status %d); see %s"
                         % (name, code, self.log("tenant-add")))

    def install_fake(self, latency):
        collections, items = [], []
        for i, name in enumerate(self.names):
            cid = "00000000-0000-4000-8000-%012d" % i
            collections.append({"id": cid, "name": name})
            items.append({"id": "10000000-0000-4000-8000-%012d" % i, "type": 1, "name": "DB_PASSWORD",
                          "collectionIds": [cid], "login": {"username": None, "password": "pw-of-" + name}})
            items.append({"id": "20000000-0000-4000-8000-%012d" % i, "type": 2, "name": "app settings",
                          "collectionIds": [cid], "notes": "API_URL='https://api.example/$x'\nMODE='prod'"})
        config = {
            "serverUrl": SERVER_URL, "unreachable": False, "caFile": None, "account": ACCOUNT,
            "organization": ORGANIZATION, "collections": collections, "items": items,
            "latency": latency, "stepLatency": {}, "faults": [],
        }
        write_private(os.path.join(self.fake_dir, "fake-bw.json"), json.dumps(config, indent=1))
        with open(FAKE_BW, encoding="utf-8") as f:
            body = f.read().split("\n", 1)[1]
        bw = os.path.join(self.fake_dir, "bw")
        with open(bw, "w", encoding="utf-8") as f:
            f.write("#!%s -IS\n%s" % (python3(), body))
        os.chmod(bw, 0o755)

    def root_of(self, name):
        return os.path.join(self.base, name, "root")

    def log(self, what):
        return os.path.join(self.logs, what + ".stderr")

    def calls(self):
        path = os.path.join(self.fake_dir, "calls.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def file_ok(self, name):
        try:
            with open(os.path.join(self.root_of(name), ".env"), encoding="utf-8") as f:
                return "DB_PASSWORD='pw-of-%s'\n" % name in f.read()
        except OSError:
            return False

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def price(calls):
    """(bw calls, logins, real-CLI seconds, seconds spent inside the fake's calls, steps)."""
    real = sum(REAL_COST.get(c["step"], UNKNOWN_COST) for c in calls)
    inside = sum((c["end"] or c["start"]) - c["start"] for c in calls)
    steps = {}
    for c in calls:
        steps[c["step"]] = steps.get(c["step"], 0) + 1
    return len(calls), steps.get("login", 0), real, inside, steps


def hook_args(host, name):
    # What jail.conf's `exec.created += "colibri-vault hook start $name ${path}"` passes.
    return ["hook", "start", name, host.root_of(name)]


def scenario_a(runner, host, n):
    tag = "a%d" % n
    codes = []
    t0 = time.perf_counter()
    for name in host.names:
        codes.append(runner.run(host, hook_args(host, name), tag, {"COLIBRI_FRESH_FOR": "0"},
                                stderr_path=host.log("hooks")))
    wall = time.perf_counter() - t0
    return {"wall": wall, "codes": codes}


def scenario_b(runner, host, n):
    tag = "b%d" % n
    t0 = time.perf_counter()
    codes = [runner.run(host, ["provision", "--all", "--boot"], tag, stderr_path=host.log("provision"))]
    boot = time.perf_counter() - t0
    hook_times, fresh = [], 0
    for name in host.names:
        log = host.log("hook-" + name)
        h0 = time.perf_counter()
        codes.append(runner.run(host, hook_args(host, name), tag, stderr_path=log))
        hook_times.append(time.perf_counter() - h0)
        with open(log, encoding="utf-8", errors="replace") as f:
            fresh += "is fresh; vault not asked" in f.read()
    wall = time.perf_counter() - t0
    return {"wall": wall, "codes": codes, "boot": boot, "hook_median": statistics.median(hook_times),
            "fresh": fresh}


def scenario_c(runner, host, n):
    tag = "c%d" % n
    t0 = time.perf_counter()
    pids = [runner.spawn(host, hook_args(host, name), stderr_path=host.log("hooks")) for name in host.names]
    codes = [runner.wait(pid, tag) for pid in pids]
    wall = time.perf_counter() - t0
    return {"wall": wall, "codes": codes}


def timed_runs(runner, host, argv, runs):
    """Wall times in ms of `runs` runs of `argv` (spawn to reaped), after 5 warm-up runs."""
    times, codes = [], set()
    for i in range(runs + 5):
        t0 = time.perf_counter()
        pid = runner.spawn_argv(host, argv, sample=False)
        code = runner.wait(pid, "timed")
        if i >= 5:
            times.append((time.perf_counter() - t0) * 1000)
            codes.add(code)
    times.sort()
    return {"median_ms": statistics.median(times), "min_ms": times[0],
            "p90_ms": times[max(int(len(times) * 0.9) - 1, 0)], "runs": runs, "codes": sorted(codes)}


def no_tenant_hook(runner, host, runs):
    """Median wall time of `hook start` for a jail that has no tenant (database present), and
    for context the same harness running /bin/true and `colibri-vault --version`."""
    hook = [runner.binary, "hook", "start", "no-such-jail", os.path.join(host.base, "no-such-jail", "root")]
    result = timed_runs(runner, host, hook, runs)
    result["true_ms"] = timed_runs(runner, host, ["/bin/true"], runs)["median_ms"]
    result["version_ms"] = timed_runs(runner, host, [runner.binary, "--version"], runs)["median_ms"]
    return result


def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s %s, %d CPUs (%s)" % (platform.system(), platform.release(), os.cpu_count() or 0, model)


def exact_rss_pass(runner, host, names, repeat=10):
    """Peak RSS, measured exactly, of the runs that spawn no bw: KiB per kind (None: no time(1))."""
    no_tenant = ["hook", "start", "no-such-jail", os.path.join(host.base, "no-such-jail", "root")]
    kinds = {}
    for _ in range(repeat):
        kinds.setdefault("no-tenant hook", []).append(runner.exact_rss(host, no_tenant)[1])
    log = host.log("exact-fresh")
    for _ in range(repeat):
        kinds.setdefault("fresh hook", []).append(runner.exact_rss(host, hook_args(host, names[0]),
                                                                   stderr_path=log)[1])
    with open(log, encoding="utf-8", errors="replace") as f:
        fresh = f.read().count("is fresh; vault not asked")
    # The batch pipeline for every tenant, with the dir source instead of bw (no child process).
    secrets = os.path.join(host.dir, "secrets")
    os.mkdir(secrets, 0o700)
    for name in names:
        write_private(os.path.join(secrets, name + ".env"), "DB_PASSWORD='dir-%s'\nMODE=prod\n" % name)
    dir_env = {"COLIBRI_SOURCE": "dir", "COLIBRI_SECRETS_DIR": secrets}
    code, kib = runner.exact_rss(host, ["provision", "--all"], dir_env, stderr_path=host.log("dir-all"))
    kinds["provision --all, dir source, N=%d" % len(names)] = [kib]
    peaks = {k: (None if None in v else max(v)) for k, v in kinds.items()}
    return {"peaks_kib": peaks, "fresh_hooks_fresh": "%d/%d" % (fresh, repeat), "dir_all_code": code}


def source_version():
    """The checkout's commit (and whether it has local changes), when git can tell."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def main():
    args = parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print("colibri-vault benchmark (make bench): %s" % started)
    print("binary   %s (source %s)" % (args.bin, source_version()))
    print("machine  %s" % machine())
    print("fake bw  %s, %.3f s per call, python %s" % (os.path.relpath(FAKE_BW, ROOT), args.latency, python3()))
    print("load     %s (1/5/15 min) at start" % loadavg())
    print()

    runner = Runner(args.bin)
    results, hosts = [], []
    scenarios = (("a", "N hooks, one session each", scenario_a),
                 ("b", "provision --all --boot + N hooks", scenario_b),
                 ("c", "N concurrent hooks (group commit)", scenario_c))
    big = max(args.tenants)
    no_tenant = exact = None
    for n in args.tenants:
        names = ["t%03d" % i for i in range(n)]
        for key, title, fn in scenarios:
            host = Host(runner, "%s%d" % (key, n), names, args.latency)
            hosts.append(host)
            print("  running (%s) N=%d (load %s) ... " % (key, n, loadavg()), end="", flush=True)
            r = fn(runner, host, n)
            calls = host.calls()
            count, logins, real, inside, steps = price(calls)
            r.update({
                "scenario": key, "title": title, "n": n, "calls": count, "logins": logins, "steps": steps,
                "real_bw_s": real, "est_real_wall_s": r["wall"] - inside + real,
                "files_ok": sum(host.file_ok(name) for name in names),
                "failed": sum(c != 0 for c in r["codes"]),
                "bw_parents": sorted({c["ppid"] for c in calls}),
                "host": host.dir,
            })
            print("%.2f s, %d bw calls, %d login(s)" % (r["wall"], count, logins), flush=True)
            results.append(r)
            if key == "b" and n == big and no_tenant is None:
                # On the host whose database holds the most tenants and log rows, while its
                # files are still fresh.
                print("  running no-tenant hook x%d (load %s) ... " % (args.runs, loadavg()), end="", flush=True)
                load = loadavg()
                no_tenant = no_tenant_hook(runner, host, args.runs)
                no_tenant["load"] = load
                print("%.2f ms median" % no_tenant["median_ms"], flush=True)
                print("  running exact RSS pass (time(1)) ... ", end="", flush=True)
                exact = exact_rss_pass(runner, host, names)
                print("done", flush=True)
    runner.sampler.close()
    end_load = loadavg()

    # One session's wall time: (a) with one tenant (one hook, one session on a fresh host).
    session = next((r for r in results if r["scenario"] == "a" and r["n"] == 1), None)
    if session is None:
        host = Host(runner, "session", ["t000"], args.latency)
        hosts.append(host)
        session = scenario_a(runner, host, 1)
        _, _, real, inside, _ = price(host.calls())
        session["est_real_wall_s"] = session["wall"] - inside + real
    session_wall, session_real = session["wall"], session["est_real_wall_s"]

    print()
    header = ("scenario", "N", "ok", "bw calls", "logins", "wall s", "xsession", "real-CLI bw s",
              "est. real wall s")
    fmt = "%-40s %4s %7s %8s %6s %8s %8s %13s %16s"
    print(fmt % header)
    print(fmt % tuple("-" * len(h) for h in header))
    for r in results:
        ok = "%d/%d" % (r["files_ok"], r["n"])
        if r["failed"]:
            ok += "!"
        print(fmt % ("(%s) %s" % (r["scenario"], r["title"]), r["n"], ok, r["calls"], r["logins"],
                     "%.2f" % r["wall"], "%.2f" % (r["wall"] / session_wall),
                     "%.1f" % r["real_bw_s"], "%.1f" % r["est_real_wall_s"]))
    print()
    print("ok: jails whose env file holds their own secret (! = some run exited non-zero)")
    print("xsession: wall / one session's wall (%.2f s: (a) with N=1)" % session_wall)
    print("real-CLI bw s: the recorded bw calls priced per step as bw-cli.md section 2 measured them")
    print("  (config 0.9, login 3.08, unlock 3.63, list collections 3.66, list items 3.72, lock 2.22, logout 2.51 s)")
    print("est. real wall s: wall - time spent inside the fake's calls + real-CLI bw s")
    for r in results:
        if r["scenario"] == "b":
            print("(b) N=%d: provision --all --boot %.2f s, then %d/%d hooks found their file fresh, "
                  "hook median %.1f ms" % (r["n"], r["boot"], r["fresh"], r["n"], r["hook_median"] * 1000))
    print()

    # colibri-vault's own peak RSS: exact (time(1)) for runs without bw, sampled VmHWM for all.
    bw_parents = set()
    for r in results:
        bw_parents.update(r["bw_parents"])
    sampled = runner.sampler.peak
    holders = [(kib, runner.scenario.get(pid, "?")) for pid, kib in sampled.items() if pid in bw_parents]
    others = [(kib, runner.scenario.get(pid, "?")) for pid, kib in sampled.items() if pid not in bw_parents]
    holder_peak = max(holders) if holders else (0, "-")
    other_peak = max(others) if others else (0, "-")
    exact_peaks = {k: v for k, v in exact["peaks_kib"].items() if v is not None}
    peak_kib = max([holder_peak[0], other_peak[0]] + list(exact_peaks.values()))
    print("no-tenant hook (database with %d tenants): median %.2f ms, min %.2f, p90 %.2f over %d runs (exit %s)"
          % (big, no_tenant["median_ms"], no_tenant["min_ms"], no_tenant["p90_ms"], no_tenant["runs"],
             ",".join(map(str, no_tenant["codes"]))))
    print("  the same harness: /bin/true %.2f ms, colibri-vault --version %.2f ms (medians); load %s before"
          % (no_tenant["true_ms"], no_tenant["version_ms"], no_tenant["load"]))
    print("peak RSS of colibri-vault itself: %.1f MiB" % (peak_kib / 1024))
    if runner.sampler.available:
        print("  sampled VmHWM, runs that spawned bw:              %5.1f MiB (max of %d, in %s)" % (
            holder_peak[0] / 1024, len(holders), holder_peak[1]))
        print("  sampled VmHWM, runs without bw:                   %5.1f MiB (max of %d sampled, in %s)" % (
            other_peak[0] / 1024, len(others), other_peak[1]))
    else:
        print("  (no /proc: the runs that spawned bw were not sampled)")
    for kind, kib in exact["peaks_kib"].items():
        shown = "n/a" if kib is None else "%5.1f MiB" % (kib / 1024)
        print("  exact (time(1) ru_maxrss), %-36s %s" % (kind + ":", shown))
    print("  (fresh hooks in the exact pass that found their file fresh: %s)" % exact["fresh_hooks_fresh"])
    print()

    # Goals (issue 5).
    by = {(r["scenario"], r["n"]): r for r in results}

    def verdict(ok):
        return "met" if ok else "MISSED"

    print("goals")
    for key in ("b", "c"):
        rows = [by[(key, n)] for n in args.tenants]
        one_login = all(r["logins"] == 1 for r in rows)
        same_calls = len({r["calls"] for r in rows}) == 1
        print("  (%s) one login for any N: %s (logins %s); bw calls independent of N: %s (calls %s)" % (
            key, verdict(one_login), "/".join(str(r["logins"]) for r in rows),
            verdict(same_calls), "/".join(str(r["calls"]) for r in rows)))
    c_big = by[("c", big)]
    print("  (c) N=%d wall <= %.1fx one session: %s (%.2f s = %.2fx of %.2f s at %.3f s/call; "
          "est. with the real CLI %.2fx)" % (
        big, GOAL_CONCURRENT_RATIO, verdict(c_big["wall"] <= GOAL_CONCURRENT_RATIO * session_wall),
        c_big["wall"], c_big["wall"] / session_wall, session_wall, args.latency,
        c_big["est_real_wall_s"] / session_real))
    hook_verdict = verdict(no_tenant["median_ms"] <= GOAL_HOOK_MS) if args.runs >= 200 else "n/a (< 200 runs)"
    print("  no-tenant hook median <= %.0f ms over >= 200 runs: %s (%.2f ms over %d runs)" % (
        GOAL_HOOK_MS, hook_verdict, no_tenant["median_ms"], args.runs))
    print("  peak RSS <= %.0f MiB: %s (%.1f MiB)" % (GOAL_RSS_MIB, verdict(peak_kib <= GOAL_RSS_MIB * 1024),
                                                  peak_kib / 1024))
    print()
    print("load     %s (1/5/15 min) at the end" % end_load)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"started": started, "machine": machine(), "latency": args.latency,
                       "load_end": end_load, "session_wall": session_wall, "results": results,
                       "no_tenant": no_tenant, "rss": {"sampled_holder_kib": holder_peak,
                                                       "sampled_other_kib": other_peak, "exact": exact}},
                      f, indent=1)
    if args.keep:
        print("hosts kept under %s" % os.path.dirname(hosts[0].dir))
    else:
        for host in hosts:
            host.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
