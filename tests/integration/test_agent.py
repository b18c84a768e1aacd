"""keyfs-agent alone, as a real process: the protocol of
include/keyfs/agent_proto.h spoken by a small client written here from the
header (not from the C code), plus what an attacker on the same host would
try: another uid, malformed frames, a stuck client, reading /proc.

Run as a script, this file is that client (used for the other-uid test):
    python3 test_agent.py SOCKET list|add NAME SECRET"""
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import SANITIZER_MARKS

VERSION = 1
ADD, REMOVE, LIST, GET = 1, 2, 3, 4
OK, ENOENT, EINVAL, EACCES, ENOSPC = 0x80, 0x81, 0x82, 0x83, 0x84
SECRET = "Tr0ub4dor&3-agent-only"


def frame(code, *fields, version=VERSION):
    body = bytes([version, code])
    for f in fields:
        f = f.encode() if isinstance(f, str) else f
        body += struct.pack(">H", len(f)) + f
    return struct.pack(">I", len(body)) + body


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError(f"agent closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def parse(body):
    assert body[0] == VERSION, body
    code, pos, fields = body[1], 2, []
    while pos < len(body):
        (n,) = struct.unpack(">H", body[pos:pos + 2])
        fields.append(body[pos + 2:pos + 2 + n])
        pos += 2 + n
    assert pos == len(body), body
    return code, fields


def call_raw(path, data, timeout=5):
    """Sends raw bytes as one request; returns (code, [fields])."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        assert n <= 4096
        return parse(recv_exact(s, n))


def call(path, code, *fields, timeout=5):
    return call_raw(path, frame(code, *fields), timeout)


class Agent:
    """keyfs-agent -f on a private socket, its log in a file."""

    def __init__(self, binary, base):
        self.binary = binary
        self.dir = os.path.join(base, "a")
        self.sock = os.path.join(self.dir, "agent.sock")
        self.log = os.path.join(base, "agent.log")
        self.proc = None

    def start(self, *extra):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", *extra, "-a", self.sock],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        # ready when it answers, not after a guessed sleep
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"keyfs-agent exited {self.proc.returncode}: "
                                     f"{self.logtext()}")
            try:
                if self.call(LIST)[0] == OK:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("keyfs-agent did not answer within 20 s")
            time.sleep(0.01)

    def call(self, code, *fields, timeout=5):
        return call(self.sock, code, *fields, timeout=timeout)

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        """Stops it like an administrator: exit 0, socket gone, clean log."""
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=20)
        self.logf.close()
        self.proc = None
        text = self.logtext()
        assert rc == 0, f"keyfs-agent exited {rc}: {text}"
        assert not os.path.exists(self.sock)
        assert SECRET not in text
        for mark in SANITIZER_MARKS:
            assert mark not in text, text

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.logf.close()


@pytest.fixture
def agent_bin(build):
    return os.path.join(build, "keyfs-agent")


@pytest.fixture
def new_agent(agent_bin, tmp_path):
    """Agents made by a test; stopped cleanly by the test, killed here."""
    made = []

    def make(base=None):
        made.append(Agent(agent_bin, base or str(tmp_path)))
        return made[-1]
    yield make
    for a in made:
        a.kill()


@pytest.fixture
def agent(new_agent):
    a = new_agent().start()
    yield a
    a.stop()


def secrets(reply):
    code, fields = reply
    assert code == OK, reply
    return [f.decode() for f in fields]


def test_add_list_get_remove(agent):
    assert agent.call(ADD, "backup", SECRET) == (OK, [])
    assert agent.call(ADD, "backup:web", "web-pass-1") == (OK, [])
    assert agent.call(ADD, "old-2023", "old-pass") == (OK, [])
    code, names = agent.call(LIST)
    assert code == OK and sorted(names) == [b"backup", b"backup:web", b"old-2023"]

    # seal: backup:<keyset> over backup
    assert secrets(agent.call(GET, "seal", "")) == [SECRET]
    assert secrets(agent.call(GET, "seal", "web")) == ["web-pass-1"]
    assert secrets(agent.call(GET, "seal", "db")) == [SECRET]
    # unseal: everything, the seal passphrase first
    got = secrets(agent.call(GET, "unseal", "web"))
    assert got[0] == "web-pass-1" and sorted(got) == sorted([SECRET, "web-pass-1", "old-pass"])
    got = secrets(agent.call(GET, "unseal", ""))
    assert got[0] == SECRET and len(got) == 3

    assert agent.call(ADD, "backup", "replaced-pass")[0] == OK
    assert secrets(agent.call(GET, "seal", "")) == ["replaced-pass"]
    assert agent.call(REMOVE, "backup") == (OK, [])
    assert agent.call(REMOVE, "backup")[0] == ENOENT
    assert agent.call(GET, "seal", "")[0] == ENOENT
    assert secrets(agent.call(GET, "seal", "web")) == ["web-pass-1"]
    assert sorted(secrets(agent.call(GET, "unseal", ""))) == ["old-pass", "web-pass-1"]
    for name in ("backup:web", "old-2023"):
        assert agent.call(REMOVE, name)[0] == OK
    assert agent.call(LIST) == (OK, [])
    assert agent.call(GET, "unseal", "")[0] == ENOENT

    log = agent.logtext()
    for line in ("added backup", "replaced backup", "removed backup", "removed old-2023"):
        assert line in log, log


def test_get_own(agent):
    """"own" answers backup:<keyset> alone, never the backup fallback, so
    keyfs can tell a keyset's own passphrase from the backup one."""
    assert agent.call(ADD, "backup", SECRET)[0] == OK
    assert agent.call(GET, "own", "web")[0] == ENOENT
    assert agent.call(ADD, "backup:web", "web-pass-1")[0] == OK
    assert secrets(agent.call(GET, "own", "web")) == ["web-pass-1"]
    assert agent.call(GET, "own", "db")[0] == ENOENT
    assert agent.call(GET, "own", "")[0] == EINVAL
    assert agent.call(GET, "own", "a/b")[0] == EINVAL


def test_requests_checked(agent):
    assert agent.call(ADD, "bad name", "x")[0] == EINVAL
    assert agent.call(ADD, "n" * 81, "x")[0] == EINVAL
    assert agent.call(ADD, "backup", "")[0] == EINVAL
    assert agent.call(ADD, "backup")[0] == EINVAL
    assert agent.call(GET, "peek", "")[0] == EINVAL
    assert agent.call(GET, "seal", "a/b")[0] == EINVAL
    assert agent.call(GET, "seal")[0] == EINVAL
    assert agent.call(LIST, "x")[0] == EINVAL
    assert agent.call(99)[0] == EINVAL
    code, fields = agent.call(REMOVE, "x y")
    assert code == EINVAL and len(fields) == 1 and fields[0]  # a message in words
    assert agent.call(ADD, "k" * 80, "x")[0] == OK


def test_full(agent):
    for i in range(32):
        assert agent.call(ADD, f"k{i}", f"secret-{i}")[0] == OK
    assert agent.call(ADD, "one-more", "x")[0] == ENOSPC
    # the largest passphrases: unseal answers what fits, seal's first
    for i in range(32):
        assert agent.call(ADD, f"k{i}", str(i % 10) * 1024)[0] == OK
    assert agent.call(ADD, "backup", "x")[0] == ENOSPC
    assert agent.call(REMOVE, "k5")[0] == OK
    assert agent.call(ADD, "backup", SECRET)[0] == OK
    got = secrets(agent.call(GET, "unseal", ""))
    assert got[0] == SECRET and 1 < len(got) < 32


def test_lifetime(new_agent):
    a = new_agent().start("-t", "1")
    assert a.call(ADD, "backup", SECRET)[0] == OK
    deadline = time.monotonic() + 5
    while a.call(LIST) != (OK, []):
        assert time.monotonic() < deadline, "passphrase still held after 5 s"
        time.sleep(0.05)
    assert a.call(GET, "seal", "")[0] == ENOENT
    assert "expired backup" in a.logtext()
    a.stop()


def test_socket_and_dir_modes(agent):
    st = os.lstat(agent.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    st = os.lstat(agent.dir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.geteuid()


@pytest.mark.parametrize("mode,owner", [(0o755, None), (0o710, None), (0o700, 65534)])
def test_unsafe_dir_refused(new_agent, mode, owner):
    a = new_agent()
    os.mkdir(a.dir)
    os.chmod(a.dir, mode)
    if owner is not None:
        os.chown(a.dir, owner, owner)
    res = subprocess.run([a.binary, "-f", "-a", a.sock], capture_output=True, text=True,
                         timeout=20)
    assert res.returncode != 0
    assert a.dir in res.stderr and "0700" in res.stderr, res.stderr
    assert not os.path.exists(a.sock)


def test_stale_socket_and_live_agent(new_agent, tmp_path):
    a = new_agent()
    os.mkdir(a.dir, 0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(a.sock)
    dead.close()  # leaves the file, as an agent killed by SIGKILL would
    a.start()
    assert "stale" in a.logtext()
    res = subprocess.run([a.binary, "-f", "-a", a.sock], capture_output=True, text=True,
                         timeout=20)
    assert res.returncode != 0 and "another agent" in res.stderr, res.stderr
    assert a.call(LIST)[0] == OK  # the first one keeps its socket
    a.stop()


@pytest.fixture
def open_base():
    """A base directory outside pytest's 0700 tree, for other uids."""
    base = tempfile.mkdtemp(prefix="keyfs-agent-test.")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(sock, *args):
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           sys.executable, os.path.abspath(__file__), sock, *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, cwd="/")


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv needs root")
def test_other_uid_refused(new_agent, open_base):
    a = new_agent(open_base).start()
    assert a.call(ADD, "backup", SECRET)[0] == OK
    # open the path so the request reaches SO_PEERCRED, the check under test
    os.chmod(open_base, 0o711)
    os.chmod(a.dir, 0o711)
    os.chmod(a.sock, 0o666)
    for args in (["get", "seal", ""], ["add", "backup", "intruder"], ["list"]):
        res = as_nobody(a.sock, *args)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[0] == hex(EACCES), res.stdout
        assert SECRET not in res.stdout
    assert "refused uid 65534" in a.logtext()
    assert secrets(a.call(GET, "seal", "")) == [SECRET]
    a.stop()


def asan(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def test_secret_never_shown(new_agent):
    a = new_agent().start("-d")
    assert a.call(ADD, "backup", SECRET)[0] == OK
    assert secrets(a.call(GET, "seal", "")) == [SECRET]
    code, names = a.call(LIST)
    assert code == OK and SECRET.encode() not in b"".join(names)
    assert a.call(ADD, "bad name", SECRET)[0] == EINVAL
    for what in ("cmdline", "environ"):
        with open(f"/proc/{a.proc.pid}/{what}", "rb") as f:
            assert SECRET.encode() not in f.read()
    with open(f"/proc/{a.proc.pid}/status") as f:
        status = f.read()
    log = a.logtext()
    assert "added backup" in log and SECRET not in log
    a.stop()  # checks the log once more, after exit
    locked = [line.split()[1] for line in status.splitlines() if line.startswith("VmLck:")]
    if not asan(a.binary):  # AddressSanitizer turns mlock() into a no-op
        assert locked and int(locked[0]) > 0, "the passphrases are not in locked memory"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_clean(new_agent, sig):
    a = new_agent().start()
    assert a.call(ADD, "backup", SECRET)[0] == OK
    a.stop(sig)  # exit 0, socket removed


def test_malformed_frames(agent):
    bad = [
        frame(LIST, version=2),                          # bad version
        struct.pack(">I", 1) + b"\x01",                  # body too short
        struct.pack(">I", 4097) + b"\x01\x03" + b"\0" * 4095,  # over the maximum
        struct.pack(">I", 6) + b"\x01\x03\x00\x09ab",    # field past the end
        struct.pack(">I", 3) + b"\x01\x03\x00",          # half a field length
        frame(ADD, "back\0up", "x"),                     # NUL in a field
        frame(LIST, *([""] * 33)),                       # too many fields
    ]
    for data in bad:
        assert call_raw(agent.sock, data)[0] == EINVAL, data[:16]
        assert agent.call(LIST)[0] == OK  # still serving
    assert "malformed" in agent.logtext()


def test_stuck_client_does_not_block(agent):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.connect(agent.sock)
        stuck.sendall(b"\0\0")  # half a length, then silence
        t0 = time.monotonic()
        assert agent.call(LIST, timeout=10)[0] == OK
        assert time.monotonic() - t0 < 5
    # a client that hangs up without a word costs nothing either
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
        gone.connect(agent.sock)
    assert agent.call(LIST)[0] == OK


def find_pid(cmdline):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == cmdline:
                    return int(pid)
        except OSError:
            pass
    return None


def test_background(agent_bin, tmp_path):
    sock = str(tmp_path / "a" / "agent.sock")
    argv = [agent_bin, "-a", sock]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
    pid = find_pid(b"\0".join(a.encode() for a in argv) + b"\0")
    assert pid, "no background agent"
    try:
        assert call(sock, ADD, "backup", SECRET)[0] == OK
        assert secrets(call(sock, GET, "seal", "")) == [SECRET]
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while os.path.exists(sock) or os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, "background agent did not exit"
        time.sleep(0.02)


def test_help_and_version(agent_bin):
    res = subprocess.run([agent_bin, "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("keyfs-agent ")
    res = subprocess.run([agent_bin, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "-t SECONDS" in res.stdout
    for bad in (["-t", "0"], ["-t", "x"], ["-t", "-5"], ["extra"], ["-z"]):
        res = subprocess.run([agent_bin, *bad], capture_output=True, text=True)
        assert res.returncode == 2 and res.stderr, bad


def main(argv):
    """The client as a command: prints the reply code and, for list, the
    names (used by the other-uid test, run under setpriv)."""
    sock, cmd, args = argv[1], argv[2], argv[3:]
    code = {"add": ADD, "remove": REMOVE, "list": LIST, "get": GET}[cmd]
    rcode, fields = call(sock, code, *args)
    names = [f.decode() for f in fields] if cmd == "list" else []
    print(hex(rcode), *names)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
