"""Hardening, fast enough for CI: crash safety under kill -9, a short load,
hostile input (each: the errno at close, the daemon alive, the store
unchanged) and the security properties of the daemon process.

The long versions are tools/crash-loop.py and tools/load.sh."""
import errno
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import pytest

from conftest import PASSWORD, ROOT, Mount, age_seal, run, tree_digest

FSCK = os.path.join(ROOT, "tools", "fsck.py")
STALE_MSG = "detached the stale mount"
DEAD = (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# ---------------------------------------------------------------- helpers

def alive(m):
    return m.proc is not None and m.proc.poll() is None


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def export_bytes(m, ks):
    with open(os.path.join(m.export, f"{ks}.pem"), "rb") as f:
        return f.read()


def content_of(path):
    return {n: hashlib.sha256(open(os.path.join(path, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(path))}


def mounts_at(path):
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def unmount_all(path):
    for _ in range(1000):
        if not mounts_at(path):
            return
        run(["fusermount3", "-u", "-z", path], check=False)


def mounted_lines(m):
    try:
        return m.logtext().count("notice: mounted ")
    except OSError:
        return 0


def start_after_kill(m):
    """Mount.start(), then also wait for this daemon's own "mounted" line:
    a stale mount can still look mounted (cached attributes)."""
    before = mounted_lines(m)
    m.start()
    deadline = time.monotonic() + 20
    while mounted_lines(m) <= before:
        assert alive(m), m.logtext()
        assert time.monotonic() < deadline, "keyfs did not log its mount"
        time.sleep(0.005)


def kill9(m):
    m.proc.kill()
    m.proc.wait()
    m.logf.close()
    m.proc = None


def fsck(store, expect=None, allow_tmp=False, allow_missing=()):
    cmd = [sys.executable, FSCK, "-q"]
    if expect:
        cmd += ["--expect", expect]
    if allow_tmp:
        cmd.append("--allow-tmp")
    if allow_missing:
        cmd += ["--allow-missing", ",".join(allow_missing)]
    return run(cmd + [store], check=False)


def write_file(path, data):
    """open/write/close like cp; returns 0 or the errno (close's included)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, data)
    except OSError as e:
        os.close(fd)
        return e.errno
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return 0


def copy_in(src, dst):
    res = run(["cp", str(src), str(dst)], check=False)
    return res.returncode, res.stderr


# ---------------------------------------------------------------- crash safety

def three_db_versions(m, store, tmp_path):
    """Three exports of db, master.key rewritten (same size) between them;
    db's active keys are #2, versions hold #0 and #1."""
    exports, known = [], []
    for i in range(3):
        if i:
            with open(os.path.join(store, "db", "master.key"), "wb") as f:
                f.write(os.urandom(32))
        deadline = time.monotonic() + 20
        data = export_bytes(m, "db")
        while exports and data == exports[-1]:
            assert time.monotonic() < deadline, "db's export never changed"
            time.sleep(0.02)
            data = export_bytes(m, "db")
        exports.append(data)
        known.append(content_of(os.path.join(store, "db")))
    for i in (0, 1):
        assert write_file(os.path.join(m.path, "import", f"v{i}.pem"), exports[i]) == 0
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"db": known, "web": [content_of(os.path.join(store, "web"))]}))
    return exports, str(expect)


def client(m, exports, rnd, stop, errors):
    """Imports and activations until the daemon dies under it."""
    while not stop.is_set():
        try:
            if rnd.random() < 0.55:
                name = os.path.join(m.path, "import", f"c{rnd.randrange(1 << 30)}.pem")
                rc = write_file(name, rnd.choice(exports))
                if rc in DEAD:
                    return
                if rc:
                    errors.append(f"import: {os.strerror(rc)}")
                else:
                    os.unlink(name)
            else:
                vs = os.listdir(os.path.join(m.store, ".keyfs", "versions", "db"))
                if vs:
                    rc = m.control(f"activate db {rnd.choice(vs)}")
                    if rc in DEAD:
                        return
                    if rc not in (0, errno.ENOENT):  # ENOENT: the other client moved it
                        errors.append(f"activate: {os.strerror(rc)}")
        except OSError as e:
            if e.errno in DEAD or not alive(m):
                return
            errors.append(f"client: {e}")


def test_kill9_during_import_and_activate_leaves_store_whole(keyfs_bin, tmp_path, store):
    rnd = random.Random()
    m = Mount(keyfs_bin, str(tmp_path), store)
    misses = []
    try:
        m.start()
        m.unlock()
        exports, expect = three_db_versions(m, store, tmp_path)
        for k in range(10):
            stop, errors = threading.Event(), []
            threads = [threading.Thread(target=client, daemon=True,
                                        args=(m, exports, random.Random(rnd.random()), stop, errors))
                       for _ in range(1)]  # one: see test_concurrent_import_and_activate
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0, 0.15))
            kill9(m)
            stop.set()
            for t in threads:
                t.join(timeout=20)
                assert not t.is_alive(), "a client hangs on the dead mount"
            assert not errors, errors
            res = fsck(store, expect, allow_tmp=True)
            assert res.returncode == 0, f"kill {k}: torn or missing keyset:\n{res.stdout}"
            stale = m.logtext().count(STALE_MSG)
            start_after_kill(m)  # it must mount despite the stale mount
            if m.logtext().count(STALE_MSG) != stale + 1:
                misses.append(k)
            res = fsck(store, expect)  # the start cleaned every temp file
            assert res.returncode == 0, f"kill {k}: after the restart:\n{res.stdout}"
            m.unlock()
        m.stop()
        stacked = mounts_at(m.path)
    finally:
        m.kill()
        unmount_all(m.path)
    # Every restart, even within the kernel's 1 s attribute cache of the
    # kill, must have detached the stale mount rather than stacked on it.
    assert not misses and not stacked, (
        f"restarts after kills {misses} did not detach the stale mount; "
        f"{stacked} stale mounts were left stacked")


def test_stale_mount_detached_at_once_after_kill9(keyfs_bin, tmp_path, store):
    """Restart right after kill -9, while the kernel still holds the dead
    mount's attributes: the stale mount is detached, not stacked on."""
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start()
        os.stat(m.path)           # caches the root's attributes, as any ls would
        kill9(m)
        start_after_kill(m)
        stacked = mounts_at(m.path)
        logged = STALE_MSG in m.logtext()
        m.stop()
    finally:
        m.kill()
        unmount_all(m.path)
    assert logged and stacked == 1, (
        f"restart within attr_timeout of a kill -9: stale mount detached: {logged}, "
        f"mounts on the mountpoint: {stacked}")


def test_concurrent_import_and_activate(mount, tmp_path, store):
    """An import and an activation of the same keyset at the same time:
    both must succeed (or the activation find its version gone: ENOENT),
    and no content may end up stored twice."""
    mount.unlock()
    exports, expect = three_db_versions(mount, store, tmp_path)
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=client, args=(mount, exports, random.Random(n), stop, errors))
               for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join()
    assert alive(mount)
    res = run([sys.executable, FSCK, "--expect", expect, store], check=False)
    assert res.returncode == 0, res.stdout
    # Restores and activations pick version numbers and compare against
    # directories the other renames: the store serializes them.
    assert not errors, f"{len(errors)} failed operations, e.g. {errors[:3]}"
    assert "stored twice" not in res.stdout, res.stdout


# ---------------------------------------------------------------- load

def test_short_load_readers_and_importers(mount, tmp_path, store):
    mount.unlock()
    refs = {ks: export_bytes(mount, ks) for ks in ("web", "db")}
    assert refs == {ks: export_bytes(mount, ks) for ks in refs}, "exports unstable before the load"
    for ks, data in refs.items():
        (tmp_path / f"{ks}.pem").write_bytes(data)
    want = {ks: hashlib.sha256(d).hexdigest() for ks, d in refs.items()}
    before = tree_digest(store)
    end = time.monotonic() + 5
    errors, mismatches, counts = [], [], {"reads": 0, "imports": 0}
    lock = threading.Lock()

    def reader(n):
        out = tmp_path / f"r{n}"
        out.mkdir()
        while time.monotonic() < end:
            for ks in refs:
                src = os.path.join(mount.export, f"{ks}.pem")
                if n % 3 == 0:
                    res = run(["cp", src, str(out / ks)], check=False)
                    got = (out / ks).read_bytes() if res.returncode == 0 else None
                elif n % 3 == 1:
                    res = run(["sha256sum", src], check=False)
                    got = res.stdout.split()[0] if res.returncode == 0 else None
                else:
                    try:
                        with open(src, "rb") as f:
                            got = f.read()
                        res = None
                    except OSError as e:
                        got, res = None, e
                with lock:
                    counts["reads"] += 1
                    if got is None:
                        errors.append(f"read {ks}: {res}")
                    elif (got if isinstance(got, str) else hashlib.sha256(got).hexdigest()) != want[ks]:
                        mismatches.append(ks)

    def importer(n):
        i = 0
        while time.monotonic() < end:
            for ks in refs:
                i += 1
                where = "import" if i % 2 else "verify"
                dst = os.path.join(mount.path, where, f"l{n}-{i}.pem")
                rc, err = copy_in(tmp_path / f"{ks}.pem", dst)
                with lock:
                    counts["imports"] += 1
                    if rc:
                        errors.append(f"{where} {ks}: {err}")
                os.unlink(dst)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=importer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert alive(mount)
    assert not errors and not mismatches, (errors[:5], mismatches[:5])
    assert counts["reads"] > 20 and counts["imports"] > 4, counts
    assert tree_digest(store) == before


# ---------------------------------------------------------------- hostile input

def test_work_factor_23_rejected_promptly(mount, tmp_path, store):
    mount.unlock()
    pem = tmp_path / "web.pem"
    pem.write_bytes(export_bytes(mount, "web"))
    binary = tmp_path / "web.age"
    run(["sh", "-c", f"sed '1d;$d' {pem} | base64 -d > {binary}"])
    data = binary.read_bytes().replace(b" 10\n", b" 23\n", 1)
    assert b"-> scrypt " in data and b" 23\n" in data
    (tmp_path / "wf23.age").write_bytes(data)
    before = tree_digest(store)
    for where in ("import", "verify"):
        t0 = time.monotonic()
        rc, err = copy_in(tmp_path / "wf23.age", os.path.join(mount.path, where))
        took = time.monotonic() - t0
        assert rc != 0 and "Key was rejected by service" in err, err
        assert took < 1.0, f"work factor 23 took {took:.2f} s to refuse: scrypt ran?"
    assert alive(mount)
    assert tree_digest(store) == before


def test_100mb_write_is_efbig_without_memory(mount, tmp_path, store):
    mount.unlock()
    before = tree_digest(store)
    res = run(["dd", "if=/dev/zero", "bs=1M", "count=100",
               f"of={os.path.join(mount.path, 'import', 'x')}"], check=False)
    assert res.returncode != 0 and "File too large" in res.stderr, res.stderr
    assert alive(mount)
    # the first 32 1 MiB blocks fit the limit exactly; the next crossed it
    assert os.stat(os.path.join(mount.path, "import", "x")).st_size == 32 << 20
    hwm = rss_kb(mount.proc.pid, "VmHWM")  # the peak, not a sample
    assert hwm < 100 * 1024, f"peak RSS {hwm} kB after a 100 MB write"
    os.unlink(os.path.join(mount.path, "import", "x"))
    assert tree_digest(store) == before


def _bomb_members():
    """name -> raw tar bytes of archives made to hurt."""
    def tar(build):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as t:
            build(t)
        return buf.getvalue()

    def reg(t, name, data=b"k"):
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        t.addfile(info, io.BytesIO(data))

    def dirent(t, name):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o700
        t.addfile(info)

    def many(t):
        dirent(t, "bomb")
        for i in range(1200):  # empty members: 512 bytes each, under the import limit
            reg(t, f"bomb/k{i:04d}", b"")

    def huge():
        d = tarfile.TarInfo("bomb")
        d.type, d.mode = tarfile.DIRTYPE, 0o700
        h = tarfile.TarInfo("bomb/huge.key")
        h.size, h.mode = 10 << 30, 0o600  # declares 10 GB, carries 4 KiB
        return (d.tobuf(tarfile.GNU_FORMAT) + h.tobuf(tarfile.GNU_FORMAT) +
                b"x" * 4096 + b"\0" * 1024)

    def newline(t):
        dirent(t, "bomb")
        reg(t, "bomb/a\nb.key")

    def non_utf8(t):
        dirent(t, "bomb")
        reg(t, "bomb/k\udcff\udcfe.key")  # raw bytes ff fe in the header

    def symlink_out(t):
        dirent(t, "bomb")
        link = tarfile.TarInfo("bomb/d/shadow.key")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/shadow"
        dirent(t, "bomb/d")
        t.addfile(link)

    def through_symlink(t):
        # nested directories are keys now; one reached through a link is not
        dirent(t, "bomb")
        link = tarfile.TarInfo("bomb/d")
        link.type, link.linkname = tarfile.SYMTYPE, "."
        t.addfile(link)
        reg(t, "bomb/d/k.key")

    def hardlink(t):
        dirent(t, "bomb")
        reg(t, "bomb/k.key")
        link = tarfile.TarInfo("bomb/h.key")
        link.type, link.linkname = tarfile.LNKTYPE, "bomb/k.key"
        t.addfile(link)

    return {"many-members": tar(many), "huge-declared-size": huge(),
            "newline-name": tar(newline), "non-utf8-name": tar(non_utf8),
            "symlink-out": tar(symlink_out), "through-symlink": tar(through_symlink),
            "hard-link": tar(hardlink)}


BOMBS = sorted(_bomb_members())


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """Each bomb sealed once (conftest's age_seal()), binary form (the
    smallest), shared by every build."""
    d = tmp_path_factory.mktemp("bombs")
    out = {}
    for name, raw in _bomb_members().items():
        (d / f"{name}.tar").write_bytes(raw)
        age_seal(d / f"{name}.tar", d / f"{name}.age", PASSWORD, armor=False)
        assert (d / f"{name}.age").stat().st_size < 1 << 20
        out[name] = d / f"{name}.age"
    return out


@pytest.mark.parametrize("bomb", BOMBS)
def test_tar_bomb_is_einval(mount, store, bombs, bomb, tmp_path):
    # the bombs are sealed by stock age at its own work factor, 18
    conf = tmp_path / "keyfs.ini"
    conf.write_text("[import]\nmax_work_factor = 18\n")
    mount.stop()
    mount.start("-c", str(conf))
    mount.unlock()
    before = tree_digest(store)
    rc, err = copy_in(bombs[bomb], os.path.join(mount.path, "import", "bomb.age"))
    assert rc != 0 and "Invalid argument" in err, (bomb, err)
    assert alive(mount)
    assert tree_digest(store) == before
    assert not os.path.exists(os.path.join(store, "bomb"))


def test_control_nul_and_1mb_line_are_einval(mount, store):
    mount.unlock()
    before = tree_digest(store)
    ctl = os.path.join(mount.path, ".control")
    for data in (b"password Correct\0Horse-8\n", b"forget\0\n", b"\0" * 64,
                 b"x" * (1 << 20) + b"\n", b"password " + b"A1a-" * (1 << 18) + b"\n",
                 b"hint " + b"h" * (1 << 20) + b"\n"):
        fd = os.open(ctl, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as e:
                os.write(fd, data)
            assert e.value.errno == errno.EINVAL, (data[:20], e.value)
        finally:
            os.close(fd)
        assert alive(mount)
    status = mount.status()
    assert "password: set" in status, "a refused command changed the password"
    assert "hint: (none)" in status
    assert tree_digest(store) == before
    assert PASSWORD not in mount.logtext()


def test_staging_more_than_import_max_total_is_enospc(keyfs_bin, tmp_path, store):
    ini = tmp_path / "small.ini"
    ini.write_text("[import]\nmax_size = 65536\nmax_total = 131072\n")
    m = Mount(keyfs_bin, str(tmp_path), store)
    fds = []
    try:
        m.start("-c", str(ini))
        m.unlock()
        good = export_bytes(m, "web")
        before = tree_digest(store)
        failed = None
        for i in range(8):
            fd = os.open(os.path.join(m.path, "import", f"s{i}"), os.O_WRONLY | os.O_CREAT, 0o600)
            fds.append(fd)
            try:
                os.write(fd, b"\0" * 65536)
            except OSError as e:
                failed = (i, e.errno)
                break
        assert failed and failed[1] == errno.ENOSPC, failed
        assert failed[0] == 2, f"ENOSPC at file {failed[0]}, expected the third (2 x 64 KiB = max_total)"
        assert alive(m)
        for fd in fds:
            try:
                os.close(fd)      # zeros: not an age file
            except OSError as e:
                assert e.errno == errno.EINVAL, e
        fds = []
        for name in os.listdir(os.path.join(m.path, "import")):
            os.unlink(os.path.join(m.path, "import", name))
        assert tree_digest(store) == before
        # the space came back: a good import works again
        assert write_file(os.path.join(m.path, "verify", "ok.pem"), good) == 0
        m.stop()
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        m.kill()


# ---------------------------------------------------------------- security

PTRACE_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
if libc.ptrace(16, pid, 0, 0):           # PTRACE_ATTACH
    print(os.strerror(ctypes.get_errno()))
else:
    os.waitpid(pid, 0)
    libc.ptrace(17, pid, 0, 0)           # PTRACE_DETACH
    print("attached")
"""


def test_daemon_not_dumpable_and_no_core(keyfs_bin, tmp_path, store):
    """As root, CAP_SYS_PTRACE overrides the dumpable flag. So the daemon and
    a control process both run without CAP_SYS_PTRACE, as does the probe:
    then only PR_SET_DUMPABLE 0 can refuse the attach (and /proc/PID/mem)."""
    drop = ["setpriv", "--bounding-set", "-sys_ptrace"]
    wrapper = tmp_path / "keyfs-noptrace"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(drop)} {keyfs_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    m = Mount(str(wrapper), str(tmp_path), store)
    ctl = subprocess.Popen(drop + ["sleep", "60"])
    try:
        m.start()
        m.unlock()
        pid = m.proc.pid
        assert open(f"/proc/{pid}/comm").read().strip() == "keyfs"
        probe = lambda p: run(drop + [sys.executable, "-c", PTRACE_PROBE, str(p)]).stdout.strip()
        assert probe(ctl.pid) == "attached", "the probe cannot attach even to a dumpable process"
        assert probe(pid) == "Operation not permitted"
        res = run(drop + ["head", "-c", "1", f"/proc/{pid}/mem"], check=False)
        assert "Permission denied" in res.stderr, res.stderr
        limits = open(f"/proc/{pid}/limits").read()
        core = [line.split() for line in limits.splitlines() if line.startswith("Max core file size")][0]
        assert core[4:6] == ["0", "0"], core
        m.stop()
    finally:
        ctl.kill()
        ctl.wait()
        m.kill()


@pytest.fixture
def open_dir():
    """A directory other users can traverse: pytest's tmp dirs are 0700,
    which would deny them before keyfs is even asked."""
    d = tempfile.mkdtemp(prefix="keyfs-uid-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_other_uid_cannot_use_the_mount(keyfs_bin, open_dir, store):
    m = Mount(keyfs_bin, open_dir, store)
    try:
        m.start()
        m.unlock()
        before = tree_digest(store)
        assert run(NOBODY + ["stat", open_dir], check=False).returncode == 0
        for cmd in (["ls", m.path], ["ls", m.export], ["cat", os.path.join(m.export, "web.pem")],
                    ["cat", os.path.join(m.path, ".control")],
                    ["sh", "-c", f"echo forget > {m.path}/.control"],
                    ["cp", "/etc/hostname", os.path.join(m.path, "import", "x")]):
            res = run(NOBODY + cmd, check=False)
            assert res.returncode != 0 and "Permission denied" in res.stderr, (cmd, res.stderr)
        assert "password: set" in m.status(), "another uid's forget was obeyed"
        assert tree_digest(store) == before
        assert alive(m)
        m.stop()
    finally:
        m.kill()


def test_password_never_leaks(mount, tmp_path, store):
    other = "Other-Horse-9x"
    mount.unlock()
    assert mount.control(f"unlock {other}") == 0
    assert mount.control("password tooweak") == errno.EINVAL
    pem = tmp_path / "web.pem"
    pem.write_bytes(export_bytes(mount, "web"))
    shutil.rmtree(os.path.join(store, "web"))
    assert copy_in(pem, os.path.join(mount.path, "import")) == (0, "")
    assert copy_in(pem, os.path.join(mount.path, "verify")) == (0, "")
    status = mount.status()
    pid = mount.proc.pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read()
    stored = b"".join(open(os.path.join(d, n), "rb").read()
                      for d, _, files in os.walk(store) for n in files)
    for secret in (PASSWORD, other, "tooweak"):
        s = secret.encode()
        assert s not in cmdline and s not in environ
        assert secret not in mount.logtext(), f"{secret} in the log"
        assert secret not in status
        if secret != "tooweak":
            assert s not in stored, f"{secret} stored in the keystore"
