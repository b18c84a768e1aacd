"""Restoring files sealed to public keys: real keys made with age-keygen
and ssh-keygen, backups sealed with stock age -r / -R, and the identity
given to keyfs by each source (keyfsctl identity add, keyfs-agent,
identity_file, identity.credential)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import Mount, age_encrypt, run, tree_digest
from test_agent import Agent

PASSPHRASE = "Identity-Pass-4"


def keyfsctl(build, *args, stdin=None):
    return run([os.path.join(build, "keyfsctl"), *args], input=stdin, check=False)


class Keys:
    """Two age identities and an ssh-ed25519 key, each with its recipient."""

    def __init__(self, d):
        self.dir = d
        self.age = os.path.join(d, "key.txt")
        self.age2 = os.path.join(d, "key2.txt")
        self.ssh = os.path.join(d, "id")
        for k in (self.age, self.age2):
            run(["age-keygen", "-o", k])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@keyfs", "-f", self.ssh])
        self.age_pub = run(["age-keygen", "-y", self.age]).stdout.strip()
        self.age2_pub = run(["age-keygen", "-y", self.age2]).stdout.strip()
        fpr = run(["ssh-keygen", "-l", "-E", "sha256", "-f", self.ssh + ".pub"]).stdout.split()[1]
        self.ssh_pub = f"ssh-ed25519 {fpr}"

    def secrets(self):
        """Text of the secret keys that must never show."""
        out = []
        for k in (self.age, self.age2):
            out += [ln for ln in open(k).read().splitlines() if ln.startswith("AGE-SECRET-KEY-")]
        body = open(self.ssh).read().splitlines()[1:-1]
        return out + body[2:]  # the first lines are the public part and the header


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return Keys(str(d))


def keyset_tar(store, tmp_path, name):
    """A tar of the store's db keyset, as tar -c makes it, under a new name."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    shutil.copytree(os.path.join(store, "db"), src / name)
    out = tmp_path / f"{name}.tar"
    run(["tar", "-C", str(src), "-cf", str(out), name])
    return out


def seal(tar, *recipients, armor=False):
    """Stock age: -r age1... or -R FILE arguments."""
    out = str(tar) + (".pem" if armor else ".age")
    run(["age", *(["-a"] if armor else []), *recipients, "-o", out, str(tar)])
    return out


def copy_in(src, dst):
    res = run(["cp", str(src), str(dst)], check=False)
    return res.returncode, res.stderr


def restored(store, name):
    """These backups are made by hand, sealed to a recipient and unsigned:
    nothing vouches for them, so a new keyset arrives as inactive version 1
    (activated only on request), its keys those of db."""
    version = os.path.join(store, ".keyfs", "versions", name, "1")
    with open(os.path.join(store, "db", "master.key"), "rb") as a:
        with open(os.path.join(version, "master.key"), "rb") as b:
            return a.read() == b.read() and not os.path.exists(os.path.join(store, name))


def no_secret(keys, *texts):
    for s in keys.secrets():
        for t in texts:
            assert s not in t


@pytest.fixture
def mount(keyfs_bin, tmp_path, store):
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        yield m
        m.stop()
    finally:
        m.kill()


def test_control_identities_restore(build, mount, tmp_path, store, keys):
    to_age = seal(keyset_tar(store, tmp_path, "viaage"), "-r", keys.age_pub, armor=True)
    to_ssh = seal(keyset_tar(store, tmp_path, "viassh"), "-R", keys.ssh + ".pub")
    to_both = seal(keyset_tar(store, tmp_path, "both"), "-r", keys.age_pub, "-R", keys.ssh + ".pub")
    res = keyfsctl(build, "-m", mount.path, "identity", "add", keys.age)
    assert res.returncode == 0, res.stderr
    assert copy_in(to_age, os.path.join(mount.path, "import", "a.pem")) == (0, "")
    assert restored(store, "viaage")
    assert keyfsctl(build, "-m", mount.path, "identity", "add", keys.ssh).returncode == 0
    assert copy_in(to_ssh, os.path.join(mount.path, "import", "s.age")) == (0, "")
    assert restored(store, "viassh")
    status = mount.status()
    assert "identities: 2" in status, status
    assert f"  {keys.age_pub} (control)" in status, status
    assert f"  {keys.ssh_pub} (control)" in status, status
    # a file sealed to both opens with either identity alone
    for key in (keys.age, keys.ssh):
        assert keyfsctl(build, "-m", mount.path, "forget").returncode == 0
        assert "identities: 0" in mount.status()
        assert keyfsctl(build, "-m", mount.path, "identity", "add", key).returncode == 0
        assert copy_in(to_both, os.path.join(mount.path, "verify", "b.age")) == (0, ""), key
    assert copy_in(to_both, os.path.join(mount.path, "import", "b.age")) == (0, "")
    assert restored(store, "both")
    no_secret(keys, mount.status(), mount.logtext())


def test_wrong_identity_rejected_and_forget_wipes(build, mount, tmp_path, store, keys):
    sealed = seal(keyset_tar(store, tmp_path, "wrong"), "-r", keys.age_pub, armor=True)
    assert keyfsctl(build, "-m", mount.path, "identity", "add", keys.age2).returncode == 0
    before = tree_digest(store)
    rc, err = copy_in(sealed, os.path.join(mount.path, "import", "w.pem"))
    assert rc != 0 and "Key was rejected by service" in err, err
    res = keyfsctl(build, "-m", mount.path, "import", sealed)
    assert res.returncode == 3 and "no password or identity keyfs holds opens it" in res.stderr
    assert tree_digest(store) == before
    assert keyfsctl(build, "-m", mount.path, "identity", "add", keys.age).returncode == 0
    assert mount.control("forget") == 0
    rc, err = copy_in(sealed, os.path.join(mount.path, "import", "n.pem"))
    assert rc != 0 and "Required key not available" in err, err
    assert tree_digest(store) == before
    assert "identities: 0" in mount.status()
    no_secret(keys, mount.status(), mount.logtext())


def test_keyfsctl_refuses_locked_ssh_key_and_opens_age_p(build, mount, tmp_path, store, keys):
    locked = os.path.join(keys.dir, "locked")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass-phrase", "-f", locked])
    res = keyfsctl(build, "-m", mount.path, "identity", "add", locked)
    assert res.returncode != 0
    assert "encrypted OpenSSH keys are not supported" in res.stderr, res.stderr
    assert "age-keygen | age -p > key.age" in res.stderr, res.stderr
    enc = os.path.join(keys.dir, "key.age")
    assert age_encrypt(keys.age, enc, PASSPHRASE, armor=False).returncode == 0
    res = keyfsctl(build, "-m", mount.path, "identity", "add", "--stdin", enc, stdin="Wrong-Pass-1\n")
    assert res.returncode == 3 and "wrong passphrase" in res.stderr, res.stderr
    assert "identities: 0" in mount.status()
    res = keyfsctl(build, "-m", mount.path, "identity", "add", "--stdin", enc, stdin=PASSPHRASE + "\n")
    assert res.returncode == 0, res.stderr
    armored = os.path.join(keys.dir, "key.age.pem")
    assert age_encrypt(keys.age2, armored, PASSPHRASE, armor=True).returncode == 0
    res = keyfsctl(build, "-m", mount.path, "identity", "add", "--stdin", armored,
                   stdin=PASSPHRASE + "\n")
    assert res.returncode == 0, res.stderr
    status = mount.status()
    assert f"  {keys.age_pub} (control)" in status and f"  {keys.age2_pub} (control)" in status
    sealed = seal(keyset_tar(store, tmp_path, "fromenc"), "-r", keys.age_pub)
    assert copy_in(sealed, os.path.join(mount.path, "import", "e.age")) == (0, "")
    assert restored(store, "fromenc")
    no_secret(keys, mount.status(), mount.logtext())


def test_agent_identity(build, keyfs_bin, tmp_path, store, keys):
    a = Agent(os.path.join(build, "keyfs-agent"), str(tmp_path)).start()
    m = None
    try:
        res = keyfsctl(build, "-a", a.sock, "agent", "add-identity", keys.ssh)
        assert res.returncode == 0, res.stderr
        name = res.stdout.strip()
        assert name.startswith("identity:ssh-ed25519:SHA256:"), name
        assert name in keyfsctl(build, "-a", a.sock, "agent", "list").stdout
        m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,agent={a.sock}")
        sealed = seal(keyset_tar(store, tmp_path, "viaagent"), "-R", keys.ssh + ".pub", armor=True)
        assert copy_in(sealed, os.path.join(m.path, "import", "g.pem")) == (0, "")
        assert restored(store, "viaagent")
        assert f"  {keys.ssh_pub} (agent)" in m.status()
        # given to keyfs too: the agent's removal leaves it
        assert keyfsctl(build, "-m", m.path, "identity", "add", keys.ssh).returncode == 0
        assert f"  {keys.ssh_pub} (control, agent)" in m.status()
        assert m.control("forget") == 0
        assert keyfsctl(build, "-a", a.sock, "agent", "remove", name).returncode == 0
        rc, err = copy_in(sealed, os.path.join(m.path, "verify", "g.pem"))
        assert rc != 0 and "Required key not available" in err, err
        assert "identities: 0" in m.status()
        m.stop()
        no_secret(keys, m.logtext(), a.logtext())
    finally:
        if m:
            m.kill()
    a.stop()


def start_fails(keyfs_bin, tmp_path, store, opts):
    mnt = tmp_path / "mnt2"
    mnt.mkdir(exist_ok=True)
    res = run([keyfs_bin, "-f", "-o", f"store={store},{opts}", str(mnt)], check=False, timeout=30)
    assert res.returncode != 0
    return res.stderr


def test_identity_file_and_credential(build, keyfs_bin, tmp_path, store, keys, monkeypatch):
    ident = tmp_path / "identities.txt"
    shutil.copyfile(keys.age, ident)
    os.chmod(ident, 0o640)
    err = start_fails(keyfs_bin, tmp_path, store, f"identity_file={ident}")
    assert "group or others may read it" in err, err
    os.chmod(ident, 0o600)
    bad = tmp_path / "bad.txt"
    bad.write_text("# a comment\n\nAGE-SECRET-KEY-1NOTAKEY\n")
    os.chmod(bad, 0o600)
    err = start_fails(keyfs_bin, tmp_path, store, f"identity_file={bad}")
    assert f"{bad}:3: malformed AGE-SECRET-KEY-1 identity" in err, err

    m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,identity_file={ident}")
    try:
        assert f"  {keys.age_pub} (file)" in m.status()
        to_age = seal(keyset_tar(store, tmp_path, "fromfile"), "-r", keys.age_pub)
        assert copy_in(to_age, os.path.join(m.path, "import", "f.age")) == (0, "")
        assert restored(store, "fromfile")

        # reload reads the file again: its new identity replaces the old
        shutil.copyfile(keys.age2, ident)
        assert keyfsctl(build, "-m", m.path, "reload").returncode == 0
        status = m.status()
        assert f"  {keys.age2_pub} (file)" in status and keys.age_pub not in status, status
        # SIGHUP does the same
        shutil.copyfile(keys.age, ident)
        m.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while keys.age_pub not in m.status():
            assert time.monotonic() < deadline, m.status()
            time.sleep(0.05)
        # a file gone bad on reload: refused, the identities held stay
        ident.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
        assert keyfsctl(build, "-m", m.path, "reload").returncode != 0
        assert f"{ident}:1: malformed AGE-SECRET-KEY-1 identity" in m.logtext()
        assert f"  {keys.age_pub} (file)" in m.status()
        no_secret(keys, m.status(), m.logtext())
        m.stop()
    finally:
        m.kill()


def test_identity_credential(keyfs_bin, tmp_path, store, keys, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    shutil.copyfile(keys.ssh, creds / "keyfs.identity")
    os.chmod(creds / "keyfs.identity", 0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    m = Mount(keyfs_bin, str(tmp_path), store).start(
        opts="work_factor=10,identity_credential=keyfs.identity")
    try:
        assert f"  {keys.ssh_pub} (credential)" in m.status()
        to_ssh = seal(keyset_tar(store, tmp_path, "fromcred"), "-R", keys.ssh + ".pub")
        assert copy_in(to_ssh, os.path.join(m.path, "import", "c.age")) == (0, "")
        assert restored(store, "fromcred")
        no_secret(keys, m.status(), m.logtext())
        m.stop()
    finally:
        m.kill()
