"""Regressions for the faults a security review found in the store, the
seal cache and the control file: each test drives a real mount the way
the fault was found, and fails on the code that had the fault."""
import base64
import errno
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from conftest import PASSWORD, Mount, age_decrypt, run, tree_digest

OTHER = "Other-Horse-8!"
STRESS_SECONDS = 6  # the hangs these guard against came within 2 s


def can_open(path):
    try:
        with open(path, "rb") as f:
            f.read()
        return 0
    except OSError as e:
        return e.errno


def armored_logn(path):
    """The scrypt work factor in the header of an armored age file."""
    lines = open(path).read().splitlines()
    body = base64.b64decode("".join(lines[1:3]))
    m = re.search(rb"\n-> scrypt \S+ (\d+)\n", body)
    assert m, body
    return int(m.group(1))


def answers(fn, timeout):
    """Runs fn in a thread; True if it returned (whatever it raised) in time."""
    done = threading.Event()

    def call():
        try:
            fn()
        except OSError:
            pass
        finally:
            done.set()

    threading.Thread(target=call, daemon=True).start()
    return done.wait(timeout)


class Workers:
    """Threads that repeat an operation and count how often it finished."""

    def __init__(self):
        self.stop = threading.Event()
        self.count = 0
        self.lock = threading.Lock()
        self.threads = []

    def add(self, fn):
        def loop():
            while not self.stop.is_set():
                try:
                    fn()
                except OSError:
                    pass  # refusals are fine: a hang is not
                with self.lock:
                    self.count += 1
        t = threading.Thread(target=loop, daemon=True)
        self.threads.append(t)
        t.start()

    def done(self):
        with self.lock:
            return self.count

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        return not any(t.is_alive() for t in self.threads)


def watch_progress(m, workers, seconds=STRESS_SECONDS):
    """Every second for `seconds`: the workers finished something since the
    last look, and listing import/ and reading status answer within 1 s."""
    last = workers.done()
    for second in range(seconds):
        time.sleep(1)
        now = workers.done()
        assert now > last, f"no operation finished in second {second + 1}"
        last = now
        assert answers(lambda: os.listdir(os.path.join(m.path, "import")), 1), \
            f"ls import/ hung in second {second + 1}"
        assert answers(m.status, 1), f"status hung in second {second + 1}"


def read_some(path):
    with open(path, "rb") as f:
        f.read(4096)


# Finding 1: a member swapped for a FIFO hung a FUSE worker (and with it
# the stage lock and the store's write lock) forever.
def test_fifo_swapped_over_member_never_hangs(keyfs_bin, tmp_path, store):
    victim = os.path.join(store, "victim")
    os.makedirs(victim, mode=0o700)
    with open(os.path.join(victim, "key"), "wb") as f:
        f.write(b"v1" * 16)
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.unlock()
        backup = tmp_path / "victim.pem"
        shutil.copyfile(os.path.join(m.export, "victim.pem"), backup)
        # a different version, so importing it compares with the live keys
        with open(os.path.join(victim, "key"), "wb") as f:
            f.write(b"v2" * 16)

        swapping = threading.Event()

        def swap():
            n = 0
            while not swapping.is_set():
                fifo = os.path.join(victim, f".fifo{n}")
                plain = os.path.join(victim, f".plain{n}")
                os.mkfifo(fifo)
                os.rename(fifo, os.path.join(victim, "key"))
                with open(plain, "wb") as f:
                    f.write(b"v2" * 16)
                os.rename(plain, os.path.join(victim, "key"))
                n += 1

        swapper = threading.Thread(target=swap, daemon=True)
        swapper.start()
        w = Workers()
        for _ in range(2):
            w.add(lambda: read_some(os.path.join(m.export, "victim.pem")))
        w.add(lambda: shutil.copyfile(backup, os.path.join(m.path, "import", "v.pem")))
        w.add(lambda: shutil.copyfile(backup, os.path.join(m.path, "verify", "v.pem")))
        try:
            watch_progress(m, w)
        finally:
            swapping.set()
            swapper.join(timeout=10)
            assert w.join(), "an operation never returned"
        for f in os.listdir(victim):
            if not f.startswith("."):
                continue
            p = os.path.join(victim, f)
            os.unlink(p)
        m.stop()
    finally:
        m.kill()


def churn_and_open(m, keysets):
    w = Workers()
    for pw in (PASSWORD, OTHER):
        w.add(lambda pw=pw: m.control(f"password {pw}"))
    for i in range(4):
        name = keysets[i % len(keysets)]
        w.add(lambda name=name: read_some(os.path.join(m.export, f"{name}.pem")))
    try:
        watch_progress(m, w)
    finally:
        assert w.join(), "an operation never returned"


# Finding 2: a lock-order cycle between the password vault and the seal
# cache stopped every export open and password change.
def test_password_churn_with_parallel_opens(keyfs_bin, tmp_path, store):
    for k in ("k1", "k2"):
        os.makedirs(os.path.join(store, k), mode=0o700)
        with open(os.path.join(store, k, "key"), "wb") as f:
            f.write(os.urandom(32))
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.unlock()
        churn_and_open(m, ["web", "db", "k1", "k2"])
        m.stop()
    finally:
        m.kill()


def test_password_churn_with_agent(build, keyfs_bin, tmp_path, store):
    sock = tmp_path / "agent" / "agent.sock"
    log = open(tmp_path / "agent.log", "wb")
    agent = subprocess.Popen([os.path.join(build, "keyfs-agent"), "-f", "-a", str(sock)],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert agent.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        run([os.path.join(build, "keyfsctl"), "-a", str(sock), "agent", "add", "backup",
             "--stdin"], input="Agent-Horse-9!\n")
        m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,agent={sock}")
        try:
            m.unlock()
            churn_and_open(m, ["web", "db"])
            m.stop()
        finally:
            m.kill()
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        log.close()


# Finding 4: raising the work factor left every export at the old one.
def test_raised_work_factor_reseals(keyfs_bin, tmp_path, store):
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.unlock()
        web = os.path.join(m.export, "web.pem")
        shutil.copyfile(web, tmp_path / "old.pem")
        old = os.stat(web)
        m.stop()
        m.start(opts="work_factor=12")
        m.unlock()
        shutil.copyfile(web, tmp_path / "new.pem")
        new = os.stat(web)
        m.stop()
    finally:
        m.kill()
    assert armored_logn(tmp_path / "old.pem") == 10
    assert armored_logn(tmp_path / "new.pem") == 12
    assert new.st_mtime > old.st_mtime, "a reseal must change the time rsync compares"
    assert new.st_ino == old.st_ino
    verifier = open(os.path.join(store, ".keyfs", "verifier")).read().split()
    assert verifier[2] == "12", verifier
    assert age_decrypt(tmp_path / "new.pem", tmp_path / "new.tar", PASSWORD).returncode == 0


# Finding 6: activate with a file in the keyset's place crashed keyfs.
def test_activate_over_a_file(mount, tmp_path):
    mount.unlock()
    shutil.copyfile(os.path.join(mount.export, "db.pem"), tmp_path / "db.pem")
    with open(os.path.join(mount.store, "db", "master.key"), "ab") as f:
        f.write(b"changed")
    shutil.copyfile(tmp_path / "db.pem", os.path.join(mount.path, "import", "db.pem"))
    assert os.path.isdir(os.path.join(mount.store, ".keyfs", "versions", "db", "1"))
    shutil.rmtree(os.path.join(mount.store, "db"))
    with open(os.path.join(mount.store, "db"), "w") as f:
        f.write("not a keyset")
    assert mount.control("activate db 1") == errno.ENOTDIR
    assert mount.proc.poll() is None
    assert "activate \"db\" version 1 failed" in mount.logtext()


# Finding 9: a hard-linked member smuggled another file into an export.
def test_hard_linked_member_refused(mount, tmp_path):
    secret = tmp_path / "outside-secret"
    secret.write_text("not a key of this keyset")
    os.link(secret, os.path.join(mount.store, "db", "linked"))
    mount.unlock()
    assert "db.pem" not in os.listdir(mount.export)
    assert can_open(os.path.join(mount.export, "db.pem")) == errno.ENOENT
    assert re.search(r"db +NOT EXPORTED: member \"linked\": hard-linked", mount.status())
    assert "web.pem" in os.listdir(mount.export)


# Finding 10: a symlinked .keyfs was followed, and cleanup deleted through it.
def test_symlinked_state_dir_refused(keyfs_bin, tmp_path, store):
    victim = tmp_path / "victim"
    (victim / "tmp" / "precious").mkdir(parents=True)
    (victim / "tmp" / "precious" / "file").write_text("keep")
    os.symlink(victim, os.path.join(store, ".keyfs"))
    m = Mount(keyfs_bin, str(tmp_path), store)
    res = run([keyfs_bin, "-f", "-o", f"store={store}", m.path], check=False, timeout=30)
    assert res.returncode != 0
    assert ".keyfs is a symlink or not a directory" in res.stderr
    assert (victim / "tmp" / "precious" / "file").read_text() == "keep"
    assert not os.path.ismount(m.path)


# Finding 14: a member name could forge log lines and send escapes.
def test_member_names_escaped_in_log(mount):
    evil = "x\nkeyfs: error: forged line \x1b[31m"
    with open(os.path.join(mount.store, "db", evil), "w") as f:
        f.write("k")
    mount.unlock()
    assert "db.pem" not in os.listdir(mount.export)
    log = mount.logtext()
    assert "forged" in log
    assert "\x1b" not in log
    assert not any(line.startswith("keyfs: error: forged") for line in log.splitlines())
    assert "\\x0akeyfs: error: forged line \\x1b[31m" in log


# Findings 15 and 22: resource bounds, and too many members gave EIO
# with no log line.
def test_keyset_bounds_reported_not_broken(mount, tmp_path):
    # Made beside the store and renamed in whole: keyfs sees each keyset
    # as it is, not half made (which is a change of its own).
    many = os.path.join(mount.store, ".many.new")
    os.makedirs(many, mode=0o700)
    for i in range(1025):
        with open(os.path.join(many, f"k{i:04d}"), "w") as f:
            f.write("k")
    os.rename(many, os.path.join(mount.store, "many"))
    dots = os.path.join(mount.store, ".dots.new")
    os.makedirs(dots, mode=0o700)
    with open(os.path.join(dots, "key"), "w") as f:
        f.write("k")
    for i in range(4100):
        open(os.path.join(dots, f".junk{i}"), "w").close()
    os.rename(dots, os.path.join(mount.store, "dots"))
    mount.unlock()
    names = os.listdir(mount.export)
    assert "many.pem" not in names and "dots.pem" not in names
    assert {"web.pem", "db.pem", "README.txt"} <= set(names)
    status = mount.status()
    assert re.search(r"many +NOT EXPORTED: more than 1024 members", status)
    assert re.search(r"dots +NOT EXPORTED: more than 4096 directory entries", status)
    log = mount.logtext()
    assert 'keyset "many" cannot be exported: more than 1024 members' in log
    assert log.count('keyset "many" cannot be exported') == 1, "logged once per change"
    readme = open(os.path.join(mount.export, "README.txt")).read()
    assert "many: NOT EXPORTED" in readme
    # the backup tools read the rest without an error
    run(["cp", "-r", mount.export, str(tmp_path / "cp")])
    run(["rsync", "-a", mount.export + "/", str(tmp_path / "rsync")])
    run(["tar", "-cf", str(tmp_path / "x.tar"), "-C", mount.path, "export"])


# Finding 16: a stored hint with a line end made every export fail (EIO)
# with nothing in the log.
def test_stored_hint_with_control_characters(mount, tmp_path):
    # hints stored by hand (an editor's line end, a control character),
    # read when keyfs starts
    mount.stop()
    meta = os.path.join(mount.store, ".keyfs", "meta")
    with open(os.path.join(meta, "hint"), "w") as f:
        f.write("the usual one\n")
    with open(os.path.join(meta, "hint.db"), "w") as f:
        f.write("bad\x1bhint")
    mount.start()
    mount.unlock()
    for k in ("web", "db"):
        shutil.copyfile(os.path.join(mount.export, f"{k}.pem"), tmp_path / f"{k}.pem")
        assert age_decrypt(tmp_path / f"{k}.pem", tmp_path / f"{k}.tar", PASSWORD).returncode == 0
    run(["tar", "-xf", str(tmp_path / "web.tar"), "-C", str(tmp_path)])
    run(["tar", "-xf", str(tmp_path / "db.tar"), "-C", str(tmp_path)])
    assert "hint = the usual one\n" in (tmp_path / "web" / "KEYSET.ini").read_text()
    assert "hint" not in (tmp_path / "db" / "KEYSET.ini").read_text()
    assert 'keyset "db": the stored password hint has control characters' in mount.logtext()
    # set through .control, a control character is refused
    assert mount.control("hint a\x07b") == errno.EINVAL


# Finding 17: a refused "password --keyset K" still wrote K's mark, and
# nothing could clear it.
def test_keyset_password_mark_and_forget(keyfs_bin, tmp_path, store):
    for i in range(17):
        os.makedirs(os.path.join(store, f"t{i:02d}"), mode=0o700)
        with open(os.path.join(store, f"t{i:02d}", "key"), "w") as f:
            f.write(str(i))
    meta = os.path.join(store, ".keyfs", "meta")
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.unlock()
        for i in range(16):
            assert m.control(f"password --keyset t{i:02d} Own-Pass-{i:02d}!") == 0
        assert m.control("password --keyset t16 Own-Pass-16!") == errno.ENOSPC
        assert not os.path.exists(os.path.join(meta, "own-password.t16"))
        assert os.path.exists(os.path.join(meta, "own-password.t00"))
        m.stop()
        m.start()
        m.unlock()
        assert can_open(os.path.join(m.export, "t16.pem")) == 0
        assert can_open(os.path.join(m.export, "t00.pem")) == errno.ENOKEY
        assert m.control("forget --keyset t00") == 0
        assert not os.path.exists(os.path.join(meta, "own-password.t00"))
        shutil.copyfile(os.path.join(m.export, "t00.pem"), tmp_path / "t00.pem")
        assert age_decrypt(tmp_path / "t00.pem", tmp_path / "t00.tar", PASSWORD).returncode == 0
        assert m.control("forget --keyset") == errno.EINVAL
        m.stop()
    finally:
        m.kill()


# Finding 19: a seal cache file copied under another keyset's name was
# served as that keyset's export.
def test_cache_file_bound_to_its_keyset(keyfs_bin, tmp_path, store):
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    cache = os.path.join(store, ".keyfs", "cache")
    try:
        m.unlock()
        for k in ("web", "db"):
            assert can_open(os.path.join(m.export, f"{k}.pem")) == 0
        m.stop()
        web = open(os.path.join(cache, "web"), "rb").read()
        db = open(os.path.join(cache, "db"), "rb").read()
        # db's sealed bytes, under a header that claims web's version
        web_hdr = web.split(b"\n", 1)[0].split(b" ")
        db_hdr, db_body = db.split(b"\n", 1)
        fields = db_hdr.split(b" ")
        fields[3] = web_hdr[3]
        with open(os.path.join(cache, "web"), "wb") as f:
            f.write(b" ".join(fields) + b"\n" + db_body)
        m.start()
        m.unlock()
        shutil.copyfile(os.path.join(m.export, "web.pem"), tmp_path / "web.pem")
        m.stop()
    finally:
        m.kill()
    assert age_decrypt(tmp_path / "web.pem", tmp_path / "web.tar", PASSWORD).returncode == 0
    listing = run(["tar", "-tf", str(tmp_path / "web.tar")]).stdout.split()
    assert all(n.startswith("web/") for n in listing), listing


# A cache written in the first file format is served unchanged (same
# bytes, inode and time) and rewritten in the current one.
def test_first_format_cache_upgraded_in_place(keyfs_bin, tmp_path, store):
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    cache = os.path.join(store, ".keyfs", "cache")
    try:
        m.unlock()
        shutil.copyfile(os.path.join(m.export, "web.pem"), tmp_path / "before.pem")
        before = os.stat(os.path.join(m.export, "web.pem"))
        m.stop()
        hdr, body = open(os.path.join(cache, "web"), "rb").read().split(b"\n", 1)
        f = hdr.split(b" ")  # keyfs-seal 2 name stamp id logn at len
        old = b" ".join([b"keyfs-seal", b"1", f[3], f[4], f[6], f[7]])
        with open(os.path.join(cache, "web"), "wb") as out:
            out.write(old + b"\n" + body)
        # as an earlier keyfs left it: without the index of a clean stop
        os.unlink(os.path.join(store, ".keyfs", "cache.all"))
        m.start()
        m.unlock()
        after = os.stat(os.path.join(m.export, "web.pem"))
        shutil.copyfile(os.path.join(m.export, "web.pem"), tmp_path / "after.pem")
        m.stop()
    finally:
        m.kill()
    assert (tmp_path / "before.pem").read_bytes() == (tmp_path / "after.pem").read_bytes()
    assert (before.st_ino, before.st_mtime, before.st_size) == \
        (after.st_ino, after.st_mtime, after.st_size)
    assert open(os.path.join(cache, "web"), "rb").read().startswith(b"keyfs-seal 2 web ")


# Cache files written with the BLAKE2b-128 sum of the release before
# are served unchanged; one whose bytes no longer match that sum is
# sealed anew, never served.
def test_blake2b_summed_cache_still_served(keyfs_bin, tmp_path, store):
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    cache = os.path.join(store, ".keyfs", "cache")
    try:
        m.unlock()
        before = {k: Path(m.export, f"{k}.pem").read_bytes() for k in ("web", "db")}
        m.stop()
        for k, pem in before.items():
            hdr, body = Path(cache, k).read_bytes().split(b"\n", 1)
            assert body == pem and len(hdr.split(b" ")[-1]) == 16, hdr  # SipHash-2-4, hex
            old = hashlib.blake2b(pem, digest_size=16).hexdigest().encode()
            if k == "db":  # a byte of the armor changed, the size the same
                i = body.index(b"\n", 40) - 5
                body = body[:i] + (b"B" if body[i:i + 1] == b"A" else b"A") + body[i + 1:]
            with open(os.path.join(cache, k), "wb") as out:
                out.write(hdr.rsplit(b" ", 1)[0] + b" " + old + b"\n" + body)
        os.unlink(os.path.join(store, ".keyfs", "cache.all"))
        m.start()
        m.unlock()
        after = {k: Path(m.export, f"{k}.pem").read_bytes() for k in before}
        m.stop()
    finally:
        m.kill()
    assert after["web"] == before["web"]
    assert after["db"] != before["db"]
    (tmp_path / "db.pem").write_bytes(after["db"])
    assert age_decrypt(tmp_path / "db.pem", tmp_path / "db.tar", PASSWORD).returncode == 0
    assert "db/" in run(["tar", "-tf", str(tmp_path / "db.tar")]).stdout


# Finding 21 (export side): an export the same configuration could not
# import again is not offered as a backup.
def test_export_never_larger_than_import_limit(keyfs_bin, tmp_path, store):
    with open(os.path.join(store, "db", "big.bin"), "wb") as f:
        f.write(os.urandom(800 * 1024))
    before = tree_digest(store)
    conf = tmp_path / "keyfs.ini"
    conf.write_text("[import]\nmax_size = 1048576\n")
    m = Mount(keyfs_bin, str(tmp_path), store).start("-c", str(conf))
    try:
        m.unlock()
        assert "db.pem" not in os.listdir(m.export)
        assert re.search(r"db +NOT EXPORTED: its export \(\d+ bytes\) would be larger than "
                         r"import.max_size \(1048576 bytes\)", m.status())
        m.stop()
        conf = tmp_path / "keyfs.ini"
        conf.write_text("[import]\nmax_size = 2097152\n")
        m.start("-c", str(conf))
        m.unlock()
        assert "db.pem" in os.listdir(m.export)
        shutil.copyfile(os.path.join(m.export, "db.pem"), tmp_path / "db.pem")
        shutil.copyfile(tmp_path / "db.pem", os.path.join(m.path, "verify", "db.pem"))
        m.stop()
    finally:
        m.kill()
    assert tree_digest(store) == before
