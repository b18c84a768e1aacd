"""Password sources: keyfsctl (terminal and --stdin), password file,
systemd credential, keyfs-agent, per-keyset passwords; and that no
password ever shows up where it should not."""
import errno
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import PASSWORD, Mount, age_decrypt, run


def keyfsctl(build, mount, *args, stdin=None, tty=False):
    cmd = [os.path.join(build, "keyfsctl"), "-m", mount.path, *args]
    if tty:
        # a real terminal: keyfsctl prompts and turns echo off
        return run(["script", "-qec", " ".join(cmd), "/dev/null"], input=stdin, check=False)
    return run(cmd, input=stdin, check=False)


def can_open(path):
    try:
        with open(path, "rb") as f:
            return f.read(10) == b"-----BEGIN"
    except OSError as e:
        return e.errno


def test_keyfsctl_on_a_terminal(build, mount):
    res = keyfsctl(build, mount, "password", tty=True, stdin=f"{PASSWORD}\nDifferent-Horse-7\n")
    assert res.returncode == 2 and "do not match" in res.stdout
    assert "not set" in mount.status()
    res = keyfsctl(build, mount, "password", tty=True, stdin="weakweakweak\nweakweakweak\n")
    assert res.returncode == 2 and "needs an upper-case letter" in res.stdout
    res = keyfsctl(build, mount, "password", tty=True, stdin=f"{PASSWORD}\n{PASSWORD}\nthe red notebook\n")
    assert res.returncode == 0, res.stdout
    assert "cannot be recovered" in res.stdout
    assert "hint: the red notebook" in mount.status()
    assert can_open(os.path.join(mount.export, "web.pem")) is True


def test_keyfsctl_stdin_and_exit_codes(build, mount, tmp_path):
    res = keyfsctl(build, mount, "password", "--stdin", stdin="short\n")
    assert res.returncode == 2 and "shorter than 8" in res.stderr
    assert keyfsctl(build, mount, "password", "--stdin", stdin=PASSWORD + "\n").returncode == 0
    pem = tmp_path / "web.pem"
    shutil.copyfile(os.path.join(mount.export, "web.pem"), pem)
    res = keyfsctl(build, mount, "verify", str(pem))
    assert res.returncode == 0 and "good copy" in res.stdout
    bad = tmp_path / "bad.pem"
    bad.write_text("not a backup\n")
    assert keyfsctl(build, mount, "verify", str(bad)).returncode == 5
    assert keyfsctl(build, mount, "password", "--stdin", stdin="Other-Horse-8\n").returncode == 0
    assert keyfsctl(build, mount, "verify", str(pem)).returncode == 3
    assert keyfsctl(build, mount, "forget").returncode == 0
    assert keyfsctl(build, mount, "verify", str(pem)).returncode == 4
    assert keyfsctl(build, mount, "unlock", "--stdin", stdin=PASSWORD + "\n").returncode == 0
    assert keyfsctl(build, mount, "verify", str(pem)).returncode == 0
    assert keyfsctl(build, mount, "nonsense").returncode == 2


def _secret_file(path, mode, password=PASSWORD):
    path.write_text(password + "\n")
    os.chmod(path, mode)
    return path


def test_password_file_must_be_private(keyfs_bin, tmp_path, store):
    pw = _secret_file(tmp_path / "pw", 0o644)
    res = run([keyfs_bin, "-f", "-o", f"store={store},work_factor=10,password_file={pw}",
               str(tmp_path)], check=False, timeout=20)
    assert res.returncode != 0
    assert "group or others may read it" in res.stderr
    os.chmod(pw, 0o600)
    m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,password_file={pw}")
    try:
        assert can_open(os.path.join(m.export, "db.pem")) is True
        # SIGHUP reads the file again
        _secret_file(pw, 0o600, "Other-Horse-8")
        m.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = m.logtext()
            if "SIGHUP" in log and "read from" in log.split("SIGHUP", 1)[1]:
                break
            time.sleep(0.05)
        shutil.copyfile(os.path.join(m.export, "db.pem"), tmp_path / "db.pem")
        assert age_decrypt(tmp_path / "db.pem", tmp_path / "db.tar", "Other-Horse-8").returncode == 0
        m.stop()
    finally:
        m.kill()
    assert PASSWORD not in m.logtext() and "Other-Horse-8" not in m.logtext()


def test_systemd_credential(keyfs_bin, tmp_path, store):
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    _secret_file(creds / "keyfs.password", 0o400)
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds))
    m = Mount(keyfs_bin, str(tmp_path), store)
    old = os.environ.get("CREDENTIALS_DIRECTORY")
    os.environ["CREDENTIALS_DIRECTORY"] = str(creds)
    try:
        m.start(opts="work_factor=10,password_credential=keyfs.password")
        assert can_open(os.path.join(m.export, "web.pem")) is True
        m.stop()
    finally:
        m.kill()
        if old is None:
            os.environ.pop("CREDENTIALS_DIRECTORY")
        else:
            os.environ["CREDENTIALS_DIRECTORY"] = old
    assert env["CREDENTIALS_DIRECTORY"] == str(creds)


def test_per_keyset_password_and_hint(build, mount, tmp_path, keyfs_bin, store):
    assert keyfsctl(build, mount, "password", "--stdin", "--hint", "global", stdin=PASSWORD + "\n").returncode == 0
    assert keyfsctl(build, mount, "password", "--stdin", "--keyset", "web", "--hint", "web's own",
                    stdin="Webonly-Pass-1\n").returncode == 0
    assert "keyset passwords: web" in mount.status()
    for ks, pw, hint in (("web", "Webonly-Pass-1", "web's own"), ("db", PASSWORD, "global")):
        shutil.copyfile(os.path.join(mount.export, f"{ks}.pem"), tmp_path / f"{ks}.pem")
        assert age_decrypt(tmp_path / f"{ks}.pem", tmp_path / f"{ks}.tar", pw).returncode == 0, ks
        ini = run(["tar", "-xOf", str(tmp_path / f"{ks}.tar"), f"{ks}/KEYSET.ini"]).stdout
        assert f"hint = {hint}\n" in ini
    # after a restart, the backup password alone does not unlock web
    mount.stop()
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        assert m.control(f"password {PASSWORD}") == 0
        assert can_open(os.path.join(m.export, "db.pem")) is True
        assert can_open(os.path.join(m.export, "web.pem")) == errno.ENOKEY
        assert m.control("password --keyset web Webonly-Pass-1") == 0
        with open(os.path.join(m.export, "web.pem"), "rb") as f:
            assert f.read() == (tmp_path / "web.pem").read_bytes()
        m.stop()
    finally:
        m.kill()


@pytest.fixture
def agent(build, tmp_path):
    sockdir = tmp_path / "agent"
    sock = sockdir / "agent.sock"
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen([os.path.join(build, "keyfs-agent"), "-f", "-a", str(sock)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None, (tmp_path / "agent.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield proc, str(sock), tmp_path / "agent.log"
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)
    log.close()


def test_agent_only(build, keyfs_bin, tmp_path, store, agent):
    proc, sock, agent_log = agent
    ctl = [os.path.join(build, "keyfsctl"), "-a", sock, "agent"]
    assert run(ctl + ["add", "backup", "--stdin"], input=PASSWORD + "\n", check=False).returncode == 0
    assert run(ctl + ["list"]).stdout.split() == ["backup"]
    m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,agent={sock}")
    try:
        shutil.copyfile(os.path.join(m.export, "web.pem"), tmp_path / "web.pem")
        assert age_decrypt(tmp_path / "web.pem", tmp_path / "web.tar", PASSWORD).returncode == 0
        for pid in (proc.pid, m.proc.pid):
            for f in ("cmdline", "environ"):
                assert PASSWORD.encode() not in open(f"/proc/{pid}/{f}", "rb").read()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        t0 = time.monotonic()
        assert can_open(os.path.join(m.export, "web.pem")) == errno.ENOKEY
        assert time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        run(["ls", "-l", m.export])
        assert time.monotonic() - t0 < 1.0
        m.stop()
    finally:
        m.kill()
    assert PASSWORD not in m.logtext()
    assert PASSWORD not in agent_log.read_text()


def test_agent_keyset_passphrase(build, keyfs_bin, tmp_path, store, agent):
    """backup:<keyset> in the agent seals that keyset; the others use backup."""
    _, sock, _ = agent
    ctl = [os.path.join(build, "keyfsctl"), "-a", sock, "agent"]
    assert run(ctl + ["add", "backup", "--stdin"], input=PASSWORD + "\n", check=False).returncode == 0
    assert run(ctl + ["add", "backup:web", "--stdin"], input="Webonly-Pass-1\n",
               check=False).returncode == 0
    m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,agent={sock}")
    try:
        for ks, pw in (("web", "Webonly-Pass-1"), ("db", PASSWORD)):
            shutil.copyfile(os.path.join(m.export, f"{ks}.pem"), tmp_path / f"{ks}.pem")
            assert age_decrypt(tmp_path / f"{ks}.pem", tmp_path / f"{ks}.tar", pw).returncode == 0, ks
        assert "keyset passwords: web" in m.status()
        m.stop()
    finally:
        m.kill()


def test_other_uid_is_refused(build, mount, agent):
    _, sock, agent_log = agent
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    res = run(nobody + ["ls", mount.export], check=False)
    assert res.returncode != 0 and "Permission denied" in res.stderr
    res = run(nobody + ["sh", "-c", f"echo forget > {mount.path}/.control"], check=False)
    assert res.returncode != 0
    os.chmod(os.path.dirname(sock), 0o711)
    os.chmod(sock, 0o666)
    res = run(nobody + [os.path.join(build, "keyfsctl"), "-a", sock, "agent", "list"], check=False)
    assert res.returncode != 0
    deadline = time.monotonic() + 5
    while "refused" not in agent_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "refused" in agent_log.read_text()
