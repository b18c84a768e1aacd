#!/usr/bin/python3
"""Two keyfs builds over one store of N keysets, in alternating rounds:
memory and the big reads, where the machine's noise would drown a
difference between two separate runs of scale-bench.py.

usage: bench/side-by-side.py KEYFS_A KEYFS_B [N] [ROUNDS]     (root)
default: N 100000, 3 rounds. Each round mounts A, then B, over the same
store (sealed once to a public key, before the first round) and prints,
per build: start-up work done after, RSS idle, the first ls -l and RSS
after it, then, after an rsync of export/ and its record writes, the
status read (best and median of 9)."""
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("scale", os.path.join(HERE, "scale-bench.py"))
scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale)


def read_all(path):
    t0 = time.monotonic()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    return time.monotonic() - t0


def one(binary, store, mnt, rcpt, dst):
    proc, _ = scale.keyfs_mount(binary, store, mnt, rcpt)
    try:
        idle_after = scale.wait_idle(proc.pid)
        rss_idle = scale.rss_mib(proc.pid)
        ls1 = scale.timed(["ls", "-l", os.path.join(mnt, "export")])
        rss_ls = scale.rss_mib(proc.pid)
        scale.sh(["rsync", "-a", os.path.join(mnt, "export") + "/", dst + "/"])
        scale.wait_idle(proc.pid)
        st = [read_all(os.path.join(mnt, ".control")) for _ in range(9)]
    finally:
        scale.unmount(mnt, proc)
    return (f"start-up {idle_after:4.1f} s  RSS idle {rss_idle:5.1f} MiB  ls -l first {ls1:6.3f} s  "
            f"RSS after {rss_ls:5.1f} MiB  status best {min(st):.3f} median "
            f"{statistics.median(st):.3f} s")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    builds = sys.argv[1:3]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    tmp = tempfile.mkdtemp(prefix="keyfs-sbs-")
    try:
        run(builds, n, rounds, tmp)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def run(builds, n, rounds, tmp):
    store, mnt = os.path.join(tmp, "store"), os.path.join(tmp, "mnt")
    os.makedirs(mnt)
    scale.make_store(store, os.path.join(tmp, "plain"), n)
    rcpt = os.path.join(tmp, "id.txt")
    scale.sh(["age-keygen", "-o", rcpt])
    with open(os.path.join(tmp, "rcpt.txt"), "w") as f:
        f.write(scale.sh(["age-keygen", "-y", rcpt]).stdout)
    rcpt = os.path.join(tmp, "rcpt.txt")
    proc, _ = scale.keyfs_mount(builds[0], store, mnt, rcpt)
    scale.sh(["ls", "-l", os.path.join(mnt, "export")])
    scale.wait_sealed(store, n)
    scale.unmount(mnt, proc)
    print(f"{n} keysets, {rounds} rounds")
    for r in range(rounds):
        for k, b in enumerate(builds):
            print(f"round {r + 1} {'AB'[k]}: {one(b, store, mnt, rcpt, os.path.join(tmp, 'dst'))}",
                  flush=True)
    print("A:", builds[0])
    print("B:", builds[1])


if __name__ == "__main__":
    main()
