#!/usr/bin/python3
"""Crash safety of activating a live keyset: kill -9 the daemon at random
moments while it installs host keys in place, restart it, and check.

    tools/live-crash-loop.py [--kills N] [--keyfs BIN] [--workdir DIR]
                             [--max-delay S] [--seed S] [--keep]

Run as root (/dev/fuse). Setup: ssh-keygen -A host keys in ROOT/etc/ssh
(content A), exported; every key file then rewritten (content B) and A
imported, so that A is an inactive version. Each round starts keyfs (a
stale mount from the kill is detached by the daemon), checks, then
activates a version whose content is not active in a loop from a thread and
kill -9s the daemon after a random delay in [0, --max-delay] s. After
each start: every key file is A's or B's, the keyset is all A or all B
(an interrupted install is finished at start), no temporary
(.NAME.keyfs-new) is left, the other content is still a version, and
every version is all A or all B (a version half removed would delete
the files it lacks when activated).

Prints the figures at the end; exits 1 if any check failed.
"""
import argparse
import hashlib
import importlib.util
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "Correct-Horse-7"
_spec = importlib.util.spec_from_file_location("crash_loop", os.path.join(ROOT, "tools", "crash-loop.py"))
crash_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash_loop)


def key_files(ssh):
    return sorted(n for n in os.listdir(ssh) if n.startswith("ssh_host_"))


def contents(ssh):
    out = {}
    for n in key_files(ssh):
        with open(os.path.join(ssh, n), "rb") as f:
            out[n] = hashlib.sha256(f.read()).hexdigest()
    return out


def temporaries(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.endswith(".keyfs-new")]


def versions(state):
    d = os.path.join(state, "versions", "ssh")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def version_contents(state, v):
    return contents(os.path.join(state, "versions", "ssh", str(v)))


def setup(work, binary):
    root, store, mnt = (os.path.join(work, n) for n in ("root", "store", "mnt"))
    ssh = os.path.join(root, "etc", "ssh")
    for d in (ssh, store, mnt):
        os.makedirs(d)
    subprocess.run(["ssh-keygen", "-A", "-f", root], check=True, capture_output=True)
    conf = os.path.join(work, "keyfs.ini")
    with open(conf, "w") as f:
        f.write(f"[keyset ssh]\npath = {ssh}\ninclude = ssh_host_*\non_activate = /bin/true\n")
    d = crash_loop.Daemon(binary, store, mnt, os.path.join(work, "keyfs.log"), ["-c", conf])
    d.start()
    a = contents(ssh)
    assert d.control(f"password {PASSWORD}") == 0
    with open(os.path.join(mnt, "export", "ssh.pem"), "rb") as f:
        pem = f.read()
    for n in key_files(ssh):
        with open(os.path.join(ssh, n), "ab") as f:
            f.write(b"# B\n")
    b = contents(ssh)
    with open(os.path.join(mnt, "import", "ssh.pem"), "wb") as f:
        f.write(pem)
    d.stop()
    assert versions(os.path.join(store, ".keyfs")) == [1], "A is not version 1"
    return d, ssh, a, b


def check(d, ssh, a, b, figures):
    """After a start: all A or all B, no temporary, both contents kept."""
    now = contents(ssh)
    bad = []
    for n, h in now.items():
        if h not in (a[n], b[n]):
            bad.append(f"{n}: neither the old nor the new content")
    if now not in (a, b):
        bad.append("the keyset is a mix of A and B after the start")
    tmp = temporaries(os.path.dirname(ssh))
    if tmp:
        bad.append(f"temporaries left after the start: {tmp}")
    state = os.path.join(d.store, ".keyfs")
    vs = versions(state)
    if not vs:
        bad.append("the inactive content is lost: no version left")
    for v in vs:
        if version_contents(state, v) not in (a, b):
            bad.append(f"version {v} is neither all A nor all B")
    figures["A" if now == a else "B"] += 1
    return bad


def activator(d, ssh, stop, counts):
    state = os.path.join(d.store, ".keyfs")
    while not stop.is_set():
        vs = versions(state)
        if not vs:
            return
        # a version with other content than the live keys (read while
        # the daemon may be installing: only a choice), so that a copy
        # a kill left behind does not turn the loop into no-ops
        try:
            now = contents(ssh)
            other = [v for v in vs if version_contents(state, v) != now]
        except OSError:  # removed while read
            other = []
        v = other[-1] if other else vs[-1]
        try:
            ok = d.control(f"activate ssh {v}") == 0
        except OSError:  # the daemon died under us
            return
        if ok:
            counts["activations"] += 1
        elif stop.is_set():
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--keyfs", default=os.path.join(ROOT, "build", "release", "keyfs"))
    ap.add_argument("--workdir")
    ap.add_argument("--max-delay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    random.seed(args.seed)
    work = args.workdir or tempfile.mkdtemp(prefix="keyfs-live-crash.")
    d, ssh, a, b = setup(work, args.keyfs)
    figures = {"A": 0, "B": 0, "activations": 0, "kills": 0, "finished": 0}
    failures = []
    for _ in range(args.kills):
        d.start()
        failures += check(d, ssh, a, b, figures)
        stop = threading.Event()
        t = threading.Thread(target=activator, args=(d, ssh, stop, figures), daemon=True)
        t.start()
        time.sleep(random.uniform(0, args.max_delay))
        stop.set()
        d.kill9()
        figures["kills"] += 1
        t.join(timeout=30)
        crash_loop.unmount_all(d.mnt)
    d.start()
    failures += check(d, ssh, a, b, figures)
    figures["finished"] = d.logtext().count("interrupted earlier")
    d.stop()
    print(f"seed {args.seed}: {figures['kills']} kills, {figures['activations']} activations "
          f"completed, {figures['finished']} interrupted installs finished at start; "
          f"after each start all A {figures['A']} times, all B {figures['B']} times; "
          f"{len(failures)} failures")
    for f in failures[:20]:
        print("FAIL:", f)
    if not args.keep and not failures:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
