"""Passwords from keyfs-agent against passwords given to keyfs itself, with
real agents, real mounts and the real keyfsctl: which one seals, what an
agent outage forgets, whose agent and whose password file are trusted,
what stays in memory after "agent remove", and that the man pages say
when keyfs asks the agent."""
import errno
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import PASSWORD, ROOT, Mount, age_decrypt, age_encrypt, run
from test_agent import ADD, LIST, OK, REMOVE, Agent, call

ROTATED = "Rotated-Horse-9"
FILED = "Filed-Horse-6"
WEB_OWN = "Webonly-Pass-1"
OLD = "Old-Horse-2021"
NOBODY = 65534


@pytest.fixture
def new_agent(build, tmp_path):
    """Real keyfs-agent processes; stopped by the test, killed here."""
    made = []

    def make(base=None):
        made.append(Agent(os.path.join(build, "keyfs-agent"), base or str(tmp_path)))
        return made[-1]
    yield make
    for a in made:
        if a.proc and a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        a.kill()


def keyfsctl(build, *args, stdin=None, env=None):
    return run([os.path.join(build, "keyfsctl"), *args], input=stdin, env=env, check=False)


def can_open(path):
    try:
        with open(path, "rb") as f:
            return f.read(10) == b"-----BEGIN"
    except OSError as e:
        return e.errno


def opens_with(m, tmp_path, keyset, password):
    """Copies the export and says whether stock age opens it with password."""
    copy = tmp_path / f"{keyset}.copy.pem"
    shutil.copyfile(os.path.join(m.export, f"{keyset}.pem"), copy)
    return age_decrypt(copy, tmp_path / f"{keyset}.copy.tar", password).returncode == 0


def old_backup(store, tmp_path, password):
    """A backup of db made with tar and stock age, under another password."""
    raw = tmp_path / "old-db.tar"
    run(["tar", "-C", store, "-cf", str(raw), "db"])
    pem = tmp_path / "old-db.pem"
    assert age_encrypt(raw, pem, password).returncode == 0
    return pem


def mount_with(keyfs_bin, tmp_path, store, opts):
    # old backups are made by stock age, at its own work factor 18
    conf = tmp_path / "import18.ini"
    conf.write_text("[import]\nmax_work_factor = 18\n")
    return Mount(keyfs_bin, str(tmp_path), store).start("-c", str(conf),
                                                        opts="work_factor=10," + opts)


# ---- finding 3: a password given through .control wins ----

def test_control_password_wins_over_agent(keyfs_bin, tmp_path, store, new_agent):
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    m = mount_with(keyfs_bin, tmp_path, store, f"agent={a.sock}")
    try:
        assert opens_with(m, tmp_path, "db", PASSWORD)  # the agent's, until...
        assert m.control(f"password {ROTATED}") == 0    # ...a rotation
        for ks in ("db", "web"):  # each open asks the agent again
            assert opens_with(m, tmp_path, ks, ROTATED), f"{ks}: the rotation was undone"
        assert "keyset passwords: (none)" in m.status()
        m.stop()
    finally:
        m.kill()
    a.stop()


def test_only_backup_keyset_becomes_a_keyset_password(keyfs_bin, tmp_path, store, new_agent):
    pw = tmp_path / "pw"
    pw.write_text(FILED + "\n")
    os.chmod(pw, 0o600)
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK      # differs from the file's
    assert a.call(ADD, "backup:web", WEB_OWN)[0] == OK
    m = mount_with(keyfs_bin, tmp_path, store, f"agent={a.sock},password_file={pw}")
    try:
        assert opens_with(m, tmp_path, "db", FILED), "db sealed with the agent's backup passphrase"
        assert opens_with(m, tmp_path, "web", WEB_OWN)
        status = m.status()
        assert re.search(r"^keyset passwords: web$", status, re.M), status
        m.stop()
    finally:
        m.kill()
    a.stop()


# ---- finding 7: an agent that does not answer costs no password ----

def test_agent_timeout_keeps_every_password(build, keyfs_bin, tmp_path, store, new_agent):
    """A stopped agent is not a gone agent: what it gave stays, and so do
    the unlock passwords given to keyfs; opens never wait on it."""
    old = old_backup(store, tmp_path, OLD)
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    m = mount_with(keyfs_bin, tmp_path, store, f"agent={a.sock}")
    try:
        assert can_open(os.path.join(m.export, "db.pem")) is True
        assert m.control(f"unlock {OLD}") == 0
        a.proc.send_signal(signal.SIGSTOP)  # alive, but answers nobody: a timeout
        try:
            t0 = time.monotonic()
            assert can_open(os.path.join(m.export, "db.pem")) is True
            assert time.monotonic() - t0 < 3, "an open waited on the agent"
            # the one given to keyfs, and the agent's, kept
            assert re.search(r"^unlock passwords: 2$", m.status(), re.M), m.status()
            res = keyfsctl(build, "-m", m.path, "verify", str(old))
            assert res.returncode == 0, res.stderr
        finally:
            a.proc.send_signal(signal.SIGCONT)
        assert can_open(os.path.join(m.export, "db.pem")) is True  # the agent is back
        m.stop()
    finally:
        m.kill()
    assert "the passwords it gave are forgotten" not in m.logtext()
    a.stop()


def test_agent_timeout_keeps_control_backup(keyfs_bin, tmp_path, store, new_agent):
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    m = mount_with(keyfs_bin, tmp_path, store, f"agent={a.sock}")
    try:
        assert can_open(os.path.join(m.export, "db.pem")) is True
        assert m.control(f"password {ROTATED}") == 0
        a.proc.send_signal(signal.SIGSTOP)
        try:
            assert opens_with(m, tmp_path, "db", ROTATED)
            assert "password: set" in m.status()
        finally:
            a.proc.send_signal(signal.SIGCONT)
        m.stop()
    finally:
        m.kill()
    a.stop()


# ---- finding 8: another user's agent gets nothing ----

@pytest.fixture
def nobody_runtime_dir():
    """A user's $XDG_RUNTIME_DIR, owned by uid 65534, below a directory
    root made traversable."""
    base = tempfile.mkdtemp(prefix="keyfs-review.")
    os.chmod(base, 0o711)
    rundir = os.path.join(base, "run")
    os.mkdir(rundir, 0o700)
    os.chown(rundir, NOBODY, NOBODY)
    yield rundir
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv needs root")
def test_agent_of_another_uid_refused(build, keyfs_bin, tmp_path, store, nobody_runtime_dir):
    sock = os.path.join(nobody_runtime_dir, "keyfs", "agent.sock")
    logf = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                             os.path.join(build, "keyfs-agent"), "-f", "-a", sock],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:  # root may talk to it directly: the agent serves root
            assert proc.poll() is None, (tmp_path / "agent.log").read_text()
            try:
                if call(sock, LIST)[0] == OK:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the agent did not answer"
            time.sleep(0.02)
        # root's keyfsctl under "sudo -E": the user's XDG_RUNTIME_DIR
        env = dict(os.environ, XDG_RUNTIME_DIR=nobody_runtime_dir)
        res = keyfsctl(build, "agent", "add", "backup", "--stdin", stdin=PASSWORD + "\n", env=env)
        assert res.returncode == 1, res
        assert f"runs as uid {NOBODY}" in res.stderr and "refused" in res.stderr, res.stderr
        assert call(sock, LIST) == (OK, []), "the passphrase reached the other user's agent"
        res = keyfsctl(build, "-a", sock, "agent", "list")
        assert res.returncode == 1 and "refused" in res.stderr, res

        # keyfs neither: the passphrase this agent offers is not taken
        assert call(sock, ADD, "backup", PASSWORD)[0] == OK
        m = mount_with(keyfs_bin, tmp_path, store, f"agent={sock}")
        try:
            assert can_open(os.path.join(m.export, "db.pem")) == errno.ENOKEY
            assert "keyset passwords: (none)" in m.status() and "password: not set" in m.status()
            m.stop()
        finally:
            m.kill()
        assert f"runs as uid {NOBODY}" in m.logtext()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        logf.close()
    assert PASSWORD not in (tmp_path / "agent.log").read_text()


# ---- finding 13: the password file's owner ----

@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_password_file_of_another_owner_refused(keyfs_bin, tmp_path, store):
    pw = tmp_path / "pw"
    pw.write_text(FILED + "\n")
    os.chmod(pw, 0o600)
    os.chown(pw, NOBODY, NOBODY)  # private, but someone else's to rewrite
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        with pytest.raises(AssertionError, match=f"owned by uid {NOBODY}"):
            m.start(opts=f"work_factor=10,password_file={pw}")
    finally:
        m.kill()
    os.chown(pw, 0, 0)
    m = mount_with(keyfs_bin, tmp_path, store, f"password_file={pw}")
    try:
        assert opens_with(m, tmp_path, "db", FILED)
        m.stop()
    finally:
        m.kill()


# ---- finding 18: nothing left in memory after "agent remove" ----

def memory_holds(pid, needle):
    """Whether any readable mapping of pid holds needle (as root). The
    huge sparse mappings of AddressSanitizer's shadow are skipped."""
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or hi - lo > 64 << 20:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, MemoryError, OverflowError):
                continue
            if needle in data:
                found.append(line.strip())
    return found


def test_agent_remove_leaves_no_copy(build, keyfs_bin, tmp_path, store, new_agent):
    secret = "Zq8-Marker-5521-never-twice"
    a = new_agent().start()
    ctl = ["-a", a.sock, "agent"]
    assert keyfsctl(build, *ctl, "add", "backup", "--stdin", stdin=PASSWORD + "\n").returncode == 0
    assert keyfsctl(build, *ctl, "add", "old-2023", "--stdin", stdin=secret + "\n").returncode == 0
    m = mount_with(keyfs_bin, tmp_path, store, f"agent={a.sock}")
    try:
        assert can_open(os.path.join(m.export, "db.pem")) is True  # keyfs takes both
        assert "unlock passwords: 2" in m.status()
        assert keyfsctl(build, *ctl, "remove", "old-2023").returncode == 0
        assert can_open(os.path.join(m.export, "db.pem")) is True  # keyfs asks again
        assert "unlock passwords: 1" in m.status()
        needle = secret.encode()
        assert memory_holds(a.proc.pid, needle) == [], "keyfs-agent"
        assert memory_holds(m.proc.pid, needle) == [], "keyfs"
        m.stop()
    finally:
        m.kill()
    a.stop()


# ---- finding 20: the man pages say when the agent is asked ----

def man_text(page):
    env = dict(os.environ, MANWIDTH="3000", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8")
    out = run(["man", "-l", os.path.join(ROOT, "man", page)], env=env).stdout
    return re.sub(r"\s+", " ", out)


def test_man_pages_say_when_the_agent_is_asked():
    agent = man_text("keyfs-agent.1")
    assert "never from inside a filesystem call" not in agent
    for words in ("One thread of keyfs talks to the agent", "No filesystem call talks to the agent",
                  "at most 500 ms", "(lookup, getattr, readdir) never ask the agent",
                  "keyfs forgets nothing", "a given password always wins",
                  "refuse an agent that runs as neither"):
        assert words in agent, words
    keyfs = man_text("keyfs.8")
    assert "Filesystem calls never wait for a password" not in keyfs
    for words in ("from a thread of its own", "waits at most 500 ms",
                  "never wait for a password or an agent", "keeps what it gave",
                  "anyone but keyfs' own user or root owns it"):
        assert words in keyfs, words
    ini = man_text("keyfs.ini.5")
    assert "at most 500 ms" in ini and "owned by anyone but" in ini
