#!/usr/bin/python3
"""Scale bench: N keysets listed, stat'ed and rsync'ed through keyfs, each
figure printed next to a plain directory of N files and, where libfuse's
passthrough example can be built (libfuse3-dev's examples), the same
directory through it, measured in the same run.

usage: bench/scale-bench.py [BUILD_DIR] [N ...]     (root: /dev/fuse)
default: build/release 10000 100000. Exports are sealed to a public key
(age-keygen), so sealing N keysets takes seconds, not scrypt minutes."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = "/usr/share/doc/libfuse3-dev/examples"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd, runs=1):
    t = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, LC_ALL="C"))
        t.append(time.monotonic() - t0)
    return statistics.median(t)


def build_passthrough(out):
    if not os.path.exists(os.path.join(EX, "passthrough.c")):
        return None
    res = subprocess.run(["sh", "-c", f"cc -O2 -o {out} {EX}/passthrough.c -I{EX} "
                          "$(pkg-config fuse3 --cflags --libs)"], capture_output=True)
    return out if res.returncode == 0 else None


def wait_mount(path, proc, limit=60):
    t0 = time.monotonic()
    while not os.path.ismount(path):
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited {proc.returncode}")
        if time.monotonic() - t0 > limit:
            raise SystemExit("no mount")
        time.sleep(0.002)
    return time.monotonic() - t0


def unmount(path, proc):
    for _ in range(200):
        if subprocess.run(["fusermount3", "-u", path], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    proc.wait(timeout=60)


def rss_mib(pid, what="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(what + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, limit=60):
    """Seconds until the daemon's start-up work (the first scan of the
    store, adding its watches, loading backup records) is done: its CPU
    time stands still for half a second."""
    t0 = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - t0 < limit:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now == last:
            break
        last = now
    return time.monotonic() - t0


def make_store(store, plain, n):
    os.makedirs(store)
    os.makedirs(plain)
    for i in range(n):
        d = os.path.join(store, f"k{i:06d}")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "key"), "wb") as f:
            f.write(os.urandom(32))
        with open(os.path.join(plain, f"k{i:06d}.pem"), "wb") as f:
            f.write(os.urandom(700))


def rsync_stats(src, dst):
    out = sh(["rsync", "-a", "--stats", src + "/", dst + "/"]).stdout
    files = sizes = None
    for line in out.splitlines():
        if line.startswith("Number of regular files transferred:"):
            files = int(line.split(":")[1].replace(",", ""))
        if line.startswith("Total transferred file size:"):
            sizes = int(line.split(":")[1].split()[0].replace(",", ""))
    return files, sizes


def keyfs_mount(binary, store, mnt, rcpt):
    proc = subprocess.Popen([binary, "-f", "-o", f"store={store},recipients={rcpt}", mnt],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_mount(mnt, proc)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def wait_sealed(store, n, limit=900):
    cache = os.path.join(store, ".keyfs", "cache")
    t0 = time.monotonic()
    while len(os.listdir(cache)) < n:
        if time.monotonic() - t0 > limit:
            raise SystemExit("sealing did not finish")
        time.sleep(0.5)


def bench(build, n, tmp, passthrough):
    store, plain = os.path.join(tmp, "store"), os.path.join(tmp, "plain")
    mnt, pmnt = os.path.join(tmp, "mnt"), os.path.join(tmp, "pmnt")
    os.makedirs(mnt)
    os.makedirs(pmnt)
    make_store(store, plain, n)
    rcpt = os.path.join(tmp, "id.txt")
    sh(["age-keygen", "-o", rcpt])
    pub = sh(["age-keygen", "-y", rcpt]).stdout
    with open(os.path.join(tmp, "rcpt.txt"), "w") as f:
        f.write(pub)
    rcpt = os.path.join(tmp, "rcpt.txt")
    binary = os.path.join(build, "keyfs")
    r = {}
    # seal everything once (the status read while it seals), then
    # measure a mount over a full cache
    proc, _ = keyfs_mount(binary, store, mnt, rcpt)
    sh(["ls", "-l", os.path.join(mnt, "export")])
    r["status sealing"] = timed(["cat", os.path.join(mnt, ".control")], runs=3)
    r["status sealing size"] = os.path.getsize(os.path.join(mnt, ".control")) or \
        len(open(os.path.join(mnt, ".control"), "rb").read())
    wait_sealed(store, n)
    r["hwm sealing"] = rss_mib(proc.pid, "VmHWM")
    unmount(mnt, proc)
    # the seal's hundred thousand files written back first: a listing
    # right after a mount is measured, not the writeback of the run before
    os.sync()
    # the first listing right after a mount, page cache warm: names, then
    # ls -l, each on a mount of its own, the median of three; the plain
    # directory's the same way, in between
    for what, cmd in (("ls", ["ls"]), ("ls -l", ["ls", "-l"])):
        k, p = [], []
        for _ in range(3):
            proc, _ = keyfs_mount(binary, store, mnt, rcpt)
            k.append(timed(cmd + [os.path.join(mnt, "export")]))
            unmount(mnt, proc)
            p.append(timed(cmd + [plain]))
        r[f"{what} at mount/keyfs"] = statistics.median(k)
        r[f"{what} at mount/plain"] = statistics.median(p)
    # the same cold: page cache dropped before the mount, against ls -lR
    # of the store itself (the same inodes) and the plain directory
    if os.access("/proc/sys/vm/drop_caches", os.W_OK):
        for what, cmd in (("keyfs", ["ls", "-l", os.path.join(mnt, "export")]),
                          ("store", ["ls", "-lR", store]), ("plain", ["ls", "-l", plain])):
            drop_caches()
            if what == "keyfs":
                proc, _ = keyfs_mount(binary, store, mnt, rcpt)
            r[f"cold ls -l/{what}"] = timed(cmd)
            if what == "keyfs":
                unmount(mnt, proc)
    proc, r["mount"] = keyfs_mount(binary, store, mnt, rcpt)
    r["idle after"] = wait_idle(proc.pid)
    r["rss_idle"] = rss_mib(proc.pid)
    exp = os.path.join(mnt, "export")
    pproc = None
    if passthrough:
        pproc = subprocess.Popen([passthrough, "-f", pmnt], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_mount(pmnt, pproc)
    pexp = os.path.join(pmnt, plain.lstrip("/")) if pproc else None
    sets = [("keyfs", exp), ("plain", plain)] + ([("passthrough", pexp)] if pexp else [])
    for name, d in sets:
        r[f"ls -l 1st/{name}"] = timed(["ls", "-l", d])
        r[f"ls -l 2nd/{name}"] = timed(["ls", "-l", d])
    r["rss_ls"] = rss_mib(proc.pid)
    for name, d in sets:
        r[f"ls/{name}"] = timed(["ls", d], runs=3)
        r[f"stat/{name}"] = timed(["stat", os.path.join(d, "k000042.pem")], runs=21)
    # warm reads: cat of 1 000 exports, once to warm, then measured
    for name, d in sets:
        files = [os.path.join(d, f"k{i:06d}.pem") for i in range(0, n, max(1, n // 1000))][:1000]
        timed(["cat"] + files)
        r[f"cat 1000/{name}"] = timed(["cat"] + files, runs=3)
    for name, d in sets:
        dst = os.path.join(tmp, f"dst-{name}")
        sh(["rsync", "-a", d + "/", dst + "/"])
        r[f"rsync 2nd/{name}"] = timed(["rsync", "-a", d + "/", dst + "/"])
    for what in ("README.txt",):
        r["readme"] = timed(["cat", os.path.join(exp, what)], runs=3)
        r["readme_size"] = os.path.getsize(os.path.join(exp, what))
    r["status"] = timed(["cat", os.path.join(mnt, ".control")], runs=3)
    r["list"] = timed(["cat", os.path.join(mnt, ".keysets")], runs=3)
    r["hwm"] = rss_mib(proc.pid, "VmHWM")
    # one keyset changes: seen within a second, the only file rsync sends
    pem = os.path.join(exp, "k000007.pem")
    before = os.stat(pem)
    with open(os.path.join(store, "k000007", "key"), "ab") as f:
        f.write(b"more")
    t0 = time.monotonic()
    while os.stat(pem).st_mtime == before.st_mtime and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    r["change seen"] = time.monotonic() - t0
    r["rsync after change"] = rsync_stats(exp, os.path.join(tmp, "dst-keyfs"))
    if pproc:
        unmount(pmnt, pproc)
    unmount(mnt, proc)
    return r


def show(n, r, have_pt):
    def row(label, key, limit=None):
        k, p = r[f"{key}/keyfs"], r[f"{key}/plain"]
        pt = f"{r[f'{key}/passthrough']:.3f}" if have_pt else "n/a"
        ratio = k / p if p else 0
        goal = f"  (goal <= {limit}x)" if limit else ""
        print(f"  {label:28} {k:8.3f} {p:8.3f} {pt:>11} {ratio:6.1f}x{goal}")
    print(f"\n{n} keysets                      keyfs    plain  passthrough  keyfs/plain")
    row("ls -l export/, first", "ls -l 1st", 3)
    row("ls -l export/, second", "ls -l 2nd", 3)
    row("ls export/", "ls", 1.5)
    row("stat one export", "stat", 1.5)
    row("second rsync -a", "rsync 2nd", 3)
    row("cat 1 000 exports, warm", "cat 1000", 2)
    if have_pt:
        k, pt = r["cat 1000/keyfs"], r["cat 1000/passthrough"]
        print(f"  {'  ... against passthrough':28} {k / pt:6.2f}x  (goal <= 1x)")
    for what in ("ls", "ls -l"):
        k, p = r[f"{what} at mount/keyfs"], r[f"{what} at mount/plain"]
        print(f"  {what + ' right after mount':28} {k:8.3f} {p:8.3f} {'':>11} {k / p:6.1f}x"
              "  (goal <= 2x)")
    if "cold ls -l/keyfs" in r:
        k, st, p = r["cold ls -l/keyfs"], r["cold ls -l/store"], r["cold ls -l/plain"]
        print(f"  {'cold ls -l after mount':28} {k:8.3f} {p:8.3f} {'':>11} {k / p:6.1f}x"
              f"  ls -lR STORE {st:.3f} s: {k / st:.1f}x (goal <= 1.5x)")
    print(f"  {'mount until ready':28} {r['mount']:8.3f} s  (goal < 1 s)")
    print(f"  {'start-up work done after':28} {r['idle after']:8.1f} s  (in the background)")
    print(f"  {'status read':28} {r['status']:8.3f} s  (goal < 0.2 s)")
    print(f"  {'status read while sealing':28} {r['status sealing']:8.3f} s  "
          f"{r['status sealing size']} bytes (goal < 0.2 s)")
    print(f"  {'.keysets read (keyfsctl list)':28} {r['list']:8.3f} s")
    print(f"  {'README.txt read':28} {r['readme']:8.3f} s  size {r['readme_size']} bytes")
    print(f"  {'RSS idle / after ls -l':28} {r['rss_idle']:6.1f} / {r['rss_ls']:.1f} MiB  "
          "(goal 48 / 96)")
    print(f"  {'VmHWM sealing / measured':28} {r['hwm sealing']:6.1f} / {r['hwm']:.1f} MiB  "
          "(goal <= 64)")
    print(f"  {'change seen after':28} {r['change seen']:8.3f} s  (goal < 1 s)")
    files, size = r["rsync after change"]
    print(f"  {'rsync after one change':28} {files} file(s), {size} bytes of file data")


def main():
    args = sys.argv[1:]
    build = args.pop(0) if args and not args[0].isdigit() else os.path.join(ROOT, "build/release")
    sizes = [int(a) for a in args] or [10000, 100000]
    for n in sizes:
        tmp = tempfile.mkdtemp(prefix="keyfs-scale-")
        try:
            pt = build_passthrough(os.path.join(tmp, "passthrough"))
            if not pt:
                print("libfuse's passthrough example could not be built: plain directory only")
            r = bench(build, n, tmp, pt)
            show(n, r, pt is not None)
        finally:
            subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
            subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "pmnt")], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
