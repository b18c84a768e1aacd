"""Real-mount fixtures: keyfs runs under the kernel FUSE driver and is
driven with the programs administrators use (cp, tar, rsync, age).

KEYFS_BUILDS names the build directories to test (colon separated); every
test runs once per build, so the sanitizer build sees the same traffic.

Tests may run in parallel (pytest-xdist, as scripts/test runs them): each
one mounts its own keyfs below its own tmp_path. A test that changes what
the whole machine shares and other tests depend on (a sysctl) is marked
system_wide and runs alone: every test holds the machine lock
(machine_lock()), shared, while it runs, and a system_wide one holds it
exclusively. A fixture of module or session scope that changes such
state takes machine_lock(exclusive=True) itself, for as long as the
change lasts."""
import base64
import contextlib
import errno
import fcntl
import hashlib
import hmac
import os
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDS = [b for b in os.environ.get("KEYFS_BUILDS", os.path.join(ROOT, "build")).split(":") if b]
PASSWORD = "Correct-Horse-7"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


# Machine-wide, not per run: two test runs on one machine share the
# sysctls and /usr as much as two workers of one run do.
LOCK_DIR = "/run/lock"
LOCK = os.path.join(LOCK_DIR, "keyfs-integration.lock")
# Taken briefly before the lock: a test waiting for the exclusive lock
# holds it, so no new shared holder keeps it waiting for ever.
GATE = os.path.join(LOCK_DIR, "keyfs-integration.gate")
_held = None  # "shared" or "exclusive" while this process holds the lock


@contextlib.contextmanager
def machine_lock(exclusive=False):
    """Holds the machine lock: shared, or exclusive (no other test of any
    run on this machine runs meanwhile). Nested, it holds what is held."""
    global _held
    if _held == "exclusive" or (_held == "shared" and not exclusive):
        yield
        return
    if _held:
        raise RuntimeError("the shared machine lock cannot become exclusive")
    os.makedirs(LOCK_DIR, exist_ok=True)
    with open(LOCK, "a") as lock:
        with open(GATE, "a") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        _held = "exclusive" if exclusive else "shared"
        try:
            yield
        finally:
            _held = None  # closing the file releases the lock


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "system_wide: changes state the whole machine shares; runs alone")
    config.addinivalue_line(
        "markers", "independent: neither changes nor depends on what the machine shares "
        "(no mount, no sysctl); takes no machine lock, so a long one keeps no "
        "system_wide test waiting")


def pytest_collection_modifyitems(config, items):
    """The tests of what scripts/test builds in the background (below)
    come late, when it is likely done: the package's (one worker
    installs, mounts and purges it) halfway, so that they do not end the
    run alone, the fuzz targets' last. The same order on every xdist
    worker: stable, by position and file name only."""
    def rank(pos_item):
        pos, item = pos_item
        name = os.path.basename(str(item.fspath))
        if name == "test_fuzz.py":
            return 3
        if name == "test_package.py":
            return 1
        return 0 if pos < len(items) // 2 else 2
    items[:] = [i for _, i in sorted(enumerate(items), key=rank)]


def background(job, timeout):
    """The outcome of a job scripts/test started beside the tests, in the
    directory KEYFS_BACKGROUND names (JOB.rc once it ended, JOB.log):
    (exit status, log), waiting for it up to timeout seconds; None when
    no such directory is named."""
    d = os.environ.get("KEYFS_BACKGROUND")
    if not d:
        return None
    rc = os.path.join(d, f"{job}.rc")

    def ended():
        with contextlib.suppress(OSError):
            with open(rc) as f:
                return f.read().strip() != ""
        return False

    assert wait_for(ended, timeout, step=1), f"{job} did not end within {timeout} s"
    with open(rc) as f, open(os.path.join(d, f"{job}.log"), errors="replace") as log:
        return int(f.read()), log.read()


@pytest.fixture(autouse=True)
def _machine_lock(request):
    if request.node.get_closest_marker("independent"):
        yield
        return
    with machine_lock(exclusive=request.node.get_closest_marker("system_wide") is not None):
        yield


def run(cmd, check=True, **kw):
    """Runs a command, returning the CompletedProcess with text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    res = subprocess.run(cmd, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} exited {res.returncode}: {res.stderr}")
    return res


def age_identity(tmp_path):
    """A new age identity at tmp_path/id.txt: (its path, its public key)."""
    key = str(tmp_path / "id.txt")
    run(["age-keygen", "-o", key])
    return key, run(["age-keygen", "-y", key]).stdout.strip()


def recipients_file(tmp_path):
    """A recipients file of one public key; its identity is tmp_path/id.txt."""
    key = str(tmp_path / "id.txt")
    run(["age-keygen", "-o", key])
    pub = str(tmp_path / "recipients.txt")
    with open(pub, "w") as f:
        f.write(run(["age-keygen", "-y", key]).stdout)
    return pub


def wait_for(pred, timeout, step=0.02):
    """Polls pred() until it is true (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def age_decrypt(src, dst, password):
    """Stock age reads passphrases only from a terminal: give it one."""
    return run(["script", "-qec", f"age -d -o {dst} {src}", "/dev/null"],
               input=password + "\n", check=False)


def age_encrypt(src, dst, password, armor=True):
    """age -p asks twice (passphrase, confirmation) on the terminal."""
    flags = "-p -a" if armor else "-p"
    return run(["script", "-qec", f"age {flags} -o {dst} {src}", "/dev/null"],
               input=f"{password}\n{password}\n", check=False)


def age_seal(src, dst, password, armor=True, logn=10):
    """What age -p writes, at scrypt work factor logn (stock age always
    uses 18, a quarter GiB and a second of CPU per file, on each side):
    the age v1 format, written here from its specification with Python's
    scrypt and the cryptography package's ChaCha20-Poly1305, independent
    of keyfs' own code. For the crafted files of the bad-input tests;
    stock age seals the files of the tests of what it makes, and
    test_import checks that stock age opens these."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    def b64(data):
        return base64.b64encode(data).decode().rstrip("=")

    def hkdf(salt, ikm, info):
        prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()

    file_key, salt, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
    wrap = hashlib.scrypt(password.encode(), salt=b"age-encryption.org/v1/scrypt" + salt,
                          n=1 << logn, r=8, p=1, dklen=32, maxmem=1 << 30)
    body = ChaCha20Poly1305(wrap).encrypt(bytes(12), file_key, None)
    header = (f"age-encryption.org/v1\n-> scrypt {b64(salt)} {logn}\n{b64(body)}\n---"
              ).encode()
    mac = hmac.new(hkdf(b"", file_key, b"header"), header, hashlib.sha256).digest()
    out = header + f" {b64(mac)}\n".encode() + nonce
    aead = ChaCha20Poly1305(hkdf(nonce, file_key, b"payload"))
    data = open(src, "rb").read()
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        out += aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, None)
    if armor:
        text = base64.b64encode(out).decode()
        out = ("-----BEGIN AGE ENCRYPTED FILE-----\n" +
               "".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64)) +
               "-----END AGE ENCRYPTED FILE-----\n").encode()
    with open(dst, "wb") as f:
        f.write(out)


# Derived state that sealing rewrites in the background, the record of
# which keyfs serves the store, and the key it signs exports with (made
# at first start): never keys of a keyset.
DERIVED = (".keyfs/cache/", ".keyfs/cache.all", ".keyfs/walks", ".keyfs/verifier", ".keyfs/fresh/",
           ".keyfs/fresh.all", ".keyfs/fresh.log", ".keyfs/.fresh.log.tmp", ".keyfs/problems/",
           ".keyfs/owner", ".keyfs/signing.key")


def tree_digest(path):
    """Names, modes and contents of every file below path: the keystore's
    keys, versions and metadata (not the seal cache, which is ciphertext
    derived from them and rewritten by background sealing)."""
    out = []
    for d, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.relpath(p, path).startswith(DERIVED):
                continue
            st = os.lstat(p)
            with open(p, "rb") as fh:
                out.append((os.path.relpath(p, path), oct(st.st_mode), fh.read()))
    return out


class Mount:
    def __init__(self, binary, tmp, store):
        self.binary = binary
        self.tmp = tmp
        self.store = store
        self.path = os.path.join(tmp, "mnt")
        self.export = os.path.join(self.path, "export")
        self.log = os.path.join(tmp, "keyfs.log")
        self.proc = None
        os.makedirs(self.path, exist_ok=True)

    def start(self, *extra, opts="work_factor=10"):
        o = f"store={self.store}" + (f",{opts}" if opts else "")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-o", o, *extra, self.path],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                raise AssertionError(f"keyfs exited {self.proc.returncode}: {self.logtext()}")
            if time.monotonic() > deadline:
                raise AssertionError("keyfs did not mount within 20 s")
            time.sleep(0.01)
        return self

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def control(self, command):
        """Writes one command; returns 0 or the errno the write failed with."""
        fd = os.open(os.path.join(self.path, ".control"), os.O_WRONLY)
        try:
            os.write(fd, (command + "\n").encode())
            return 0
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)

    def status(self):
        with open(os.path.join(self.path, ".control")) as f:
            return f.read()

    def unlock(self, password=PASSWORD):
        assert self.control(f"password {password}") == 0

    def stop(self):
        """Unmounts like an administrator and checks a clean exit."""
        if not self.proc:
            return
        for _ in range(100):
            res = run(["fusermount3", "-u", self.path], check=False)
            if res.returncode == 0 or "busy" not in res.stderr.lower():
                break
            time.sleep(0.05)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            self.logf.close()
        self.proc = None
        text = self.logtext()
        assert rc == 0, f"keyfs exited {rc}: {text}"
        for mark in SANITIZER_MARKS:
            assert mark not in text, text

    def kill(self):
        """Cleanup after a failed test: lazy unmount, then the daemon."""
        if self.proc and self.proc.poll() is None:
            run(["fusermount3", "-u", "-z", self.path], check=False)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif os.path.ismount(self.path) or _enotconn(self.path):
            run(["fusermount3", "-u", "-z", self.path], check=False)
        self.proc = None


def _enotconn(path):
    try:
        os.stat(path)
        return False
    except OSError as e:
        return e.errno == errno.ENOTCONN


@pytest.fixture(params=BUILDS, ids=lambda b: os.path.basename(b.rstrip("/")))
def build(request):
    return request.param


@pytest.fixture
def keyfs_bin(build):
    return os.path.join(build, "keyfs")


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "store")
    run([os.path.join(ROOT, "scripts", "demo-store"), path])
    return path


@pytest.fixture
def mount(keyfs_bin, tmp_path, store):
    """A started keyfs over the demo store; stopped cleanly at the end."""
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start()
    try:
        yield m
        m.stop()
    finally:
        m.kill()
