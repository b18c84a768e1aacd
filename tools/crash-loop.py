#!/usr/bin/python3
"""Crash safety: import and activate in a loop, kill -9 the daemon at random
moments, remount, and check the keystore with tools/fsck.py every time.

    tools/crash-loop.py [--kills N] [--keyfs BIN] [--workdir DIR] [--clients N]
                        [--max-delay S] [--targeted P] [--import-window S]
                        [--prune P] [--restart-delay S] [--seed S] [--keep]

Run as root (/dev/fuse). Setup: a demo store (web, db) plus a keyset
"fresh"; three exports of web and db are taken, a key file changed between
them (so the keys differ and imports make versions), and one of fresh,
which is then removed from the store. The known contents go to
expect.json for fsck. Each round:

  1. start keyfs -f (work_factor=10) on the mountpoint; after a kill the
     mount is stale: the daemon must detach it and say so in its log
     (--restart-delay waits before restarting; the default is at once);
  2. tools/fsck.py --expect (strict): no temp files may linger after the
     start, every keyset is one known content, nothing missing;
  3. unlock, then --clients threads import random exports (cp-style
     open/write/close into import/), activate random versions through
     .control and verify copies, while background sealing runs;
  4. kill -9 after a random delay in [0, --max-delay] s, or (share
     --targeted) within --import-window s of the start of an import that
     writes (restores a content the store lacks), to hit temp dir, fsync
     and rename;
  5. tools/fsck.py --expect --allow-tmp (temp leftovers are expected right
     after a kill; everything else must hold), and no content ever stored
     may disappear: each keyset keeps every content it had, plus every
     content whose import close() reported success;
  6. with chance --prune, one stored version is deleted while the daemon
     is down (and sometimes the whole "fresh" keyset), so that the next
     rounds restore it again: without this every import after the first
     few would be "identical, nothing changed" and write nothing.

Prints the figures at the end; exits 1 if any check failed.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FSCK = os.path.join(ROOT, "tools", "fsck.py")
PASSWORD = "Correct-Horse-7"
STALE_MSG = "detached the stale mount"
DEAD = (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV)


def content_of(path):
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


class Daemon:
    def __init__(self, binary, store, mnt, log, extra=()):
        self.binary, self.store, self.mnt, self.log = binary, store, mnt, log
        self.extra = list(extra)  # more keyfs arguments, such as -c FILE
        self.proc = None

    def mounted_count(self):
        try:
            return self.logtext().count("notice: mounted ")
        except OSError:
            return 0

    def start(self):
        before = self.mounted_count()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-f", "-o", f"store={self.store},work_factor=10", *self.extra,
             self.mnt],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + 20
        # a stale mount may still look mounted (cached attributes): wait
        # for this daemon's own "mounted" line too
        while not (self.mounted_count() > before and os.path.ismount(self.mnt)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"keyfs exited {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("keyfs did not mount within 20 s")
            time.sleep(0.005)

    def control(self, cmd):
        fd = os.open(os.path.join(self.mnt, ".control"), os.O_WRONLY)
        try:
            os.write(fd, (cmd + "\n").encode())
            return 0
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        for _ in range(100):
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, text=True)
            if r.returncode == 0 or "busy" not in r.stderr.lower():
                break
            time.sleep(0.05)
        return self.proc.wait(timeout=30)

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def mounts_at(mnt):
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == mnt)


def unmount_all(mnt):
    """Lazily unmounts whatever is still mounted on mnt; returns how many."""
    n = 0
    while mounts_at(mnt) and n < 10000:
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        n += 1
    return n


def fsck(store, expect, allow_tmp, allow_missing, report):
    cmd = [sys.executable, FSCK, "-q", "--expect", expect, "--report", report]
    if allow_tmp:
        cmd.append("--allow-tmp")
    if allow_missing:
        cmd += ["--allow-missing", ",".join(sorted(allow_missing))]
    r = subprocess.run(cmd + [store], capture_output=True, text=True)
    with open(report) as f:
        rep = json.load(f)
    return r.returncode, r.stdout + r.stderr, rep


def leftovers(store):
    state = os.path.join(store, ".keyfs")
    n = {"tmp": 0, "cache": 0}
    try:
        n["tmp"] = len(os.listdir(os.path.join(state, "tmp")))
        n["cache"] = sum(1 for x in os.listdir(os.path.join(state, "cache")) if x.startswith("."))
    except OSError:
        pass
    return n


class Clients:
    """Threads importing, activating and verifying until told to stop or
    the daemon dies under them."""

    def __init__(self, d, exports, rnd, n, missing=()):
        self.d, self.exports, self.n = d, exports, n
        self.missing = list(missing)   # (keyset, content) not stored: importing writes
        self.write_times = []
        self.rnd = random.Random(rnd.random())
        self.stop = threading.Event()
        self.importing = threading.Event()   # set as an import's write starts
        self.lock = threading.Lock()
        self.acked = []            # (keyset, content index) whose import succeeded
        self.stats = {}
        self.threads = []

    def count(self, key):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def op_import(self, rnd, verify=False, which=None):
        ks = rnd.choice(sorted(self.exports))
        i = rnd.randrange(len(self.exports[ks]))
        if which:
            ks, i = which
        where = "verify" if verify else "import"
        path = os.path.join(self.d.mnt, where, f"c{threading.get_ident() % 1000}-{rnd.randrange(1 << 30)}.pem")
        data = self.exports[ks][i]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            t0 = time.monotonic()
            if which:
                self.importing.set()
            os.write(fd, data)
        finally:
            os.close(fd)          # the outcome, as close(2)'s errno
        if which:
            self.write_times.append(time.monotonic() - t0)
        if not verify:
            with self.lock:
                self.acked.append((ks, i))
        self.count(f"{where} ok")
        try:
            os.unlink(path)
        except OSError:
            pass

    def op_activate(self, rnd):
        ks = rnd.choice(sorted(self.exports))
        try:
            vs = os.listdir(os.path.join(self.d.store, ".keyfs", "versions", ks))
        except OSError:
            vs = []
        vs = [v for v in vs if v.isdigit()]
        if not vs:
            return
        rc = self.d.control(f"activate {ks} {rnd.choice(vs)}")
        if rc in DEAD:
            raise OSError(rc, os.strerror(rc))
        self.count("activate ok" if rc == 0 else f"activate {errno.errorcode.get(rc, rc)}")

    def run(self, seed):
        rnd = random.Random(seed)
        while not self.stop.is_set():
            r = rnd.random()
            try:
                with self.lock:
                    which = self.missing.pop() if self.missing else None
                if which:
                    self.op_import(rnd, which=which)
                elif r < 0.5:
                    self.op_import(rnd)
                elif r < 0.9:
                    self.op_activate(rnd)
                else:
                    self.op_import(rnd, verify=True)
            except OSError as e:
                if e.errno in DEAD or self.d.proc.poll() is not None:
                    return  # the daemon died under us
                self.count(f"error {errno.errorcode.get(e.errno, e.errno)}")

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self.run, args=(self.rnd.random(),), daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
            if t.is_alive():
                raise RuntimeError("a client thread hangs after the kill")


def make_exports(d, store, work):
    """Three exports of web and db with a key file changed between them,
    one of fresh; returns ({ks: [bytes]}, {ks: [content]})."""
    exports, known = {}, {}
    changes = {
        "web": lambda i: open(os.path.join(store, "web", "ed25519.pub"), "a").write(f"# rotation {i}\n"),
        "db": lambda i: open(os.path.join(store, "db", "master.key"), "wb").write(os.urandom(32)),
    }
    assert d.control(f"password {PASSWORD}") == 0
    for ks in ("web", "db", "fresh"):
        exports[ks], known[ks] = [], []
        for i in range(1 if ks == "fresh" else 3):
            if i:
                changes[ks](i)
                time.sleep(1.1)   # let the kernel's cached attributes expire
            deadline = time.monotonic() + 20
            while True:
                with open(os.path.join(d.mnt, "export", f"{ks}.pem"), "rb") as f:
                    data = f.read()
                if not exports[ks] or data != exports[ks][-1]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"export of {ks} never changed after a key change")
                time.sleep(0.05)
            exports[ks].append(data)
            known[ks].append(content_of(os.path.join(store, ks)))
            with open(os.path.join(work, f"{ks}.{i}.pem"), "wb") as f:
                f.write(data)
    # the store holds content #2 of web and db; store #0 and #1 as versions
    for ks in ("web", "db"):
        for i in (0, 1):
            fd = os.open(os.path.join(d.mnt, "import", f"setup-{ks}-{i}.pem"), os.O_WRONLY | os.O_CREAT)
            os.write(fd, exports[ks][i])
            os.close(fd)
    return exports, known


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--keyfs", default=os.path.join(ROOT, "build", "keyfs"), help="the keyfs binary")
    ap.add_argument("--workdir", help="default: a new temporary directory")
    ap.add_argument("--max-delay", type=float, default=0.3, help="seconds before each kill, at most")
    ap.add_argument("--clients", type=int, default=1,
                    help="client threads (default 1; 2 also races imports against activations)")
    ap.add_argument("--targeted", type=float, default=0.5,
                    help="share of kills aimed at the first --import-window s of an import")
    ap.add_argument("--import-window", type=float, default=0.012)
    ap.add_argument("--prune", type=float, default=0.6,
                    help="chance per round of deleting one stored version while the daemon "
                         "is down, so that imports restore it again (exercising the writes)")
    ap.add_argument("--restart-delay", type=float, default=0.0,
                    help="seconds between a kill and the restart (default 0: at once)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rnd = random.Random(seed)
    work = args.workdir or tempfile.mkdtemp(prefix="keyfs-crash-")
    os.makedirs(work, exist_ok=True)
    store, mnt = os.path.join(work, "store"), os.path.join(work, "mnt")
    expect, report = os.path.join(work, "expect.json"), os.path.join(work, "report.json")
    log = os.path.join(work, "keyfs.log")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run([os.path.join(ROOT, "scripts", "demo-store"), store], check=True, capture_output=True)
    os.makedirs(os.path.join(store, "fresh"))
    for name in ("a.key", "b.key"):
        with open(os.path.join(store, "fresh", name), "wb") as f:
            f.write(os.urandom(48))
    print(f"crash-loop: seed {seed}, work dir {work}, keyfs {args.keyfs}", flush=True)

    d = Daemon(args.keyfs, store, mnt, log)
    d.start()
    failures = []
    figures = {"kills": 0, "fsck runs": 0, "fsck failures": 0, "stale mounts detached": 0,
               "kills leaving .keyfs/tmp leftovers": 0, "kills leaving cache tmp leftovers": 0,
               "lost contents": 0, "hanging clients": 0,
               "starts that did not detach the stale mount": 0, "kills aimed at an import": 0,
               "contents dropped to be restored again": 0,
               "rounds ending with a content stored twice": 0}
    stats = {}
    write_times = []
    try:
        exports, known = make_exports(d, store, work)
        with open(expect, "w") as f:
            json.dump(known, f, indent=1)
        shutil.rmtree(os.path.join(store, "fresh"))
        present = {}
        rc, out, rep = fsck(store, expect, False, {"fresh"}, report)
        figures["fsck runs"] += 1
        if rc:
            failures.append(f"setup: fsck failed:\n{out}")
        for ks, r in rep.items():
            present[ks] = {i for i in [r["active"], *r["versions"].values()] if i is not None}
        assert present["web"] == {0, 1, 2} and present["db"] == {0, 1, 2}, present

        for k in range(args.kills):
            cl = None
            if k:
                time.sleep(args.restart_delay)
                stale_before = d.logtext().count(STALE_MSG)
                d.start()
                if d.logtext().count(STALE_MSG) != stale_before + 1:
                    figures["starts that did not detach the stale mount"] += 1
                else:
                    figures["stale mounts detached"] += 1
                # the start must have cleaned every temp file a kill left
                rc, out, rep = fsck(store, expect, False,
                                    {ks for ks in known if not present.get(ks)}, report)
                figures["fsck runs"] += 1
                if rc:
                    figures["fsck failures"] += 1
                    failures.append(f"round {k}: fsck after the start:\n{out}")
            if k and rnd.random() < 0.05:
                # sometimes kill during start-up and the first sealing
                if rnd.random() < 0.5:
                    d.control(f"password {PASSWORD}")
                time.sleep(rnd.uniform(0, 0.02))
            else:
                if k:
                    rc = d.control(f"password {PASSWORD}")
                    if rc:
                        failures.append(f"round {k}: password failed: {os.strerror(rc)}")
                missing = [(ks, i) for ks in known for i in range(len(known[ks]))
                           if i not in present.get(ks, set())]
                rnd.shuffle(missing)
                targeted = missing and rnd.random() < args.targeted
                cl = Clients(d, exports, rnd, args.clients, missing if targeted else ())
                cl.start()
                if targeted:
                    # aim at a restore that writes: within a few ms of its start
                    cl.importing.wait(timeout=5)
                    time.sleep(rnd.uniform(0, args.import_window))
                    figures["kills aimed at an import"] += 1
                else:
                    time.sleep(rnd.uniform(0, args.max_delay))
            d.kill9()
            figures["kills"] += 1
            if cl:
                try:
                    cl.join()
                except RuntimeError:
                    figures["hanging clients"] += 1
                    failures.append(f"round {k}: a client hangs after the kill")
                for key, v in cl.stats.items():
                    stats[key] = stats.get(key, 0) + v
                write_times.extend(cl.write_times)
            left = leftovers(store)
            figures["kills leaving .keyfs/tmp leftovers"] += left["tmp"] > 0
            figures["kills leaving cache tmp leftovers"] += left["cache"] > 0
            acked = cl.acked if cl else []
            missing_ok = {ks for ks in known if not present.get(ks) and
                          not any(a[0] == ks for a in acked)}
            rc, out, rep = fsck(store, expect, True, missing_ok, report)
            figures["fsck runs"] += 1
            if rc:
                figures["fsck failures"] += 1
                failures.append(f"round {k}: fsck after the kill:\n{out}")
            for ks, r in rep.items():
                held = [i for i in [r["active"], *r["versions"].values()] if i is not None]
                if len(held) != len(set(held)):
                    figures["rounds ending with a content stored twice"] += 1
                now = {i for i in [r["active"], *r["versions"].values()] if i is not None and i >= 0}
                want = present.get(ks, set()) | {i for (a, i) in acked if a == ks}
                if not want <= now:
                    figures["lost contents"] += 1
                    failures.append(f"round {k}: {ks}: contents {sorted(want - now)} disappeared "
                                    f"(had {sorted(want)}, now {sorted(now)})")
                present[ks] = now | want
            # Make imports write again: drop a stored content (the daemon is
            # down), so a later import of it goes through temp dir + rename.
            with_versions = [k for k in ("web", "db") if rep[k]["versions"]]
            if with_versions and rnd.random() < args.prune:
                ks = rnd.choice(with_versions)
                v, idx = rnd.choice(sorted(rep[ks]["versions"].items()))
                shutil.rmtree(os.path.join(store, ".keyfs", "versions", ks, v))
                held = [rep[ks]["active"], *(i for n, i in rep[ks]["versions"].items() if n != v)]
                present[ks] = {i for i in held if i is not None and i >= 0}
                figures["contents dropped to be restored again"] += 1
            if rnd.random() < args.prune / 3 and not rep["fresh"]["versions"] and \
                    os.path.isdir(os.path.join(store, "fresh")):
                shutil.rmtree(os.path.join(store, "fresh"))
                present["fresh"] = set()
                figures["contents dropped to be restored again"] += 1
            if failures and len(failures) > 20:
                break
        time.sleep(args.restart_delay)
        d.start()
        rc, out, _ = fsck(store, expect, False, {ks for ks in known if not present.get(ks)}, report)
        figures["fsck runs"] += 1
        if rc:
            figures["fsck failures"] += 1
            failures.append(f"final fsck:\n{out}")
        rc = d.stop()
        if rc:
            failures.append(f"final stop: keyfs exited {rc}")
    finally:
        if d.proc and d.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
            d.proc.kill()
            d.proc.wait()
        if figures["starts that did not detach the stale mount"]:
            failures.append(f"{figures['starts that did not detach the stale mount']} starts did not "
                            f"log \"{STALE_MSG}\" (a second mount was stacked on the stale one)")
        stacked = unmount_all(mnt)
        if stacked:
            failures.append(f"{stacked} mounts were left stacked on {mnt} (stale mounts not detached)")
        figures["mounts left stacked at the end"] = stacked

    print(f"crash-loop SUMMARY: seed {seed}")
    for key, v in figures.items():
        print(f"  {key}: {v}")
    print("  client operations: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    if write_times:
        write_times.sort()
        print(f"  restoring imports timed: {len(write_times)}, median "
              f"{1000 * write_times[len(write_times) // 2]:.1f} ms, max {1000 * write_times[-1]:.1f} ms")
    print("  versions at the end: " + ", ".join(
        f"{ks} {len(os.listdir(os.path.join(store, '.keyfs', 'versions', ks)))}"
        for ks in sorted(os.listdir(os.path.join(store, ".keyfs", "versions")))))
    for f in failures:
        print("FAIL: " + f)
    if not failures and not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print("crash-loop: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
