"""Command keysets: a [keyset] whose members are what a program leaves
(backup_command), restored by another (restore_command). GnuPG's secret
keys go out through export/ to stock age and come back through import/
and keyfsctl activate; output that does not change keeps the export as
it was, output that does reaches export/ at the next run; a program that
fails, hangs, writes nothing or leaves a daemon behind is reported for
its own keyset only; what a program leaves that is not a regular file it
made is left out; a failing restore_command fails the activation; and a
config that mixes a path with a backup_command, or names a user that does
not exist, is refused."""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

from conftest import PASSWORD, age_decrypt, run, wait_for
from test_members import mounted_with

SEAL = "[seal]\nwork_factor = 10\n"


def keyfsctl(build, *args, **kw):
    return run([os.path.join(build, "keyfsctl"), *args], check=False, **kw)


@contextlib.contextmanager
def mounted(keyfs_bin, tmp_path, keysets):
    """keyfs over an empty store with keysets (config text) beside it;
    stopped cleanly (and checked) when the block ends without error."""
    store = str(tmp_path / "store")
    os.makedirs(store, exist_ok=True)
    gen = mounted_with(keyfs_bin, tmp_path, store,
                       f"[store]\npath = {store}\n" + SEAL + keysets)
    m = next(gen)
    ok = False
    try:
        yield m
        ok = True
    finally:
        if ok:
            next(gen, None)  # m.stop(): a clean exit, no sanitizer report
        else:
            gen.close()


def script(path, body, mode=0o755):
    """A small /bin/sh program at path; returns its path."""
    path = str(path)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, mode)
    return path


def pem_path(m, name):
    return os.path.join(m.export, name + ".pem")


def read_pem(m, name):
    with open(pem_path(m, name), "rb") as f:
        return f.read()


def wait_export(m, name, timeout=10):
    assert wait_for(lambda: os.path.exists(pem_path(m, name)), timeout), \
        f"export/{name}.pem did not appear:\n{m.status()}\n{m.logtext()}"


def open_backup(pem_bytes, tmp_path, tag):
    """Stock age opens it; returns {member name: (bytes, TarInfo)} of the
    keyset's directory in the tar, and the tar's raw bytes."""
    pem = tmp_path / f"{tag}.pem"
    pem.write_bytes(pem_bytes)
    tar = tmp_path / f"{tag}.tar"
    res = age_decrypt(pem, tar, PASSWORD)
    assert res.returncode == 0, res.stdout
    members = {}
    with tarfile.open(tar) as t:
        for info in t.getmembers():
            f = t.extractfile(info) if info.isfile() else None
            members[info.name] = (f.read() if f else None, info)
    return members, tar.read_bytes()


def files_of(members, name):
    """The keyset's own members (not KEYSET.ini / KEYSET.sig): name -> bytes."""
    out = {}
    for path, (data, info) in members.items():
        top, _, rest = path.partition("/")
        if top == name and rest and rest not in ("KEYSET.ini", "KEYSET.sig"):
            out[rest] = data
    return out


def keyset_line(status, name):
    for line in status.splitlines():
        if re.match(rf"^  {re.escape(name)}\s", line):
            return line
    raise AssertionError(f"no keyset line for {name} in:\n{status}")


def versions(m, name):
    d = os.path.join(m.store, ".keyfs", "versions", name)
    return sorted(int(v) for v in os.listdir(d)) if os.path.isdir(d) else []


def pid_in(path, timeout=5):
    """The pid a script wrote to path with echo $! > path, once the line is
    whole: the shell makes the file before it writes to it."""
    assert wait_for(lambda: path.exists() and path.read_text().endswith("\n"), timeout), path
    return int(path.read_text())


def gone(pid):
    """The process is gone (or dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def kill_if_sleep(pid):
    """Cleanup of a sleep a test's program left behind: only that one."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().split(b"\0")[0].endswith(b"sleep"):
                os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


# ------------------------------------------------------------------ GnuPG


def gpg(home, *args, check=True):
    return run(["gpg", *args], check=check, env=dict(os.environ, GNUPGHOME=str(home)))


def fingerprints(home):
    out = gpg(home, "--with-colons", "--list-secret-keys", check=False).stdout
    return [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")]


@pytest.fixture
def gnupg(tmp_path):
    """A GNUPGHOME with one Ed25519 secret key (no passphrase): (home, fpr).
    The agents of it and of tmp_path/fresh are stopped afterwards."""
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        gpg(home, "--batch", "--passphrase", "", "--quick-gen-key", "Test <t@example.org>",
            "ed25519", "default", "never")
        fprs = fingerprints(home)
        assert len(fprs) >= 1, fprs
        yield home, fprs[0]
    finally:
        for h in (home, tmp_path / "fresh"):
            if h.exists():
                run(["gpgconf", "--kill", "all"], check=False,
                    env=dict(os.environ, GNUPGHOME=str(h)))


def test_gnupg_secret_keys_round_trip(build, keyfs_bin, tmp_path, gnupg):
    home, fpr = gnupg
    conf = (f"[keyset gpg]\nbackup_command = gpg --batch --export-secret-keys --armor\n"
            f"backup_stdout = secret-keys.asc\n"
            f"restore_command = gpg --batch --import secret-keys.asc\n"
            f"env = GNUPGHOME={home}\n")
    with mounted(keyfs_bin, tmp_path, conf) as m:
        m.unlock()
        wait_export(m, "gpg")
        saved = read_pem(m, "gpg")
        members, _ = open_backup(saved, tmp_path, "first")
        files = files_of(members, "gpg")
        assert list(files) == ["secret-keys.asc"], list(members)
        assert files["secret-keys.asc"].startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
        info = members["gpg/secret-keys.asc"][1]
        assert (info.mode & 0o7777, info.uid, info.gid) == (0o600, 0, 0), info

        # the member is the secret key: a fresh keyring holds it after import
        fresh = tmp_path / "fresh"
        fresh.mkdir(mode=0o700)
        asc = tmp_path / "secret-keys.asc"
        asc.write_bytes(files["secret-keys.asc"])
        gpg(fresh, "--batch", "--import", str(asc))
        assert fingerprints(fresh) == [fpr]

        # the key is lost: the next run has nothing to back up
        gpg(home, "--batch", "--yes", "--delete-secret-and-public-key", fpr)
        assert fingerprints(home) == []
        res = keyfsctl(build, "-m", m.path, "refresh", "gpg")
        assert res.returncode == 1, res
        assert res.stderr.startswith("keyfsctl: refresh gpg: "), res.stderr
        assert "wrote nothing" in res.stderr, res.stderr
        assert wait_for(lambda: not os.path.exists(pem_path(m, "gpg")), 5), \
            "the members from before are still exported as if current"
        status = m.status()
        assert re.search(r"NOT EXPORTED: backup_command exited 0 but wrote nothing",
                         keyset_line(status, "gpg")), status
        assert re.search(r"^backup_command gpg: exited 0 but wrote nothing", status, re.M), status

        # restored from the backup copy: an inactive version, then activate
        assert versions(m, "gpg") == []
        run(["cp", str(tmp_path / "first.pem"), os.path.join(m.path, "import", "gpg.pem")])
        vs = versions(m, "gpg")
        assert len(vs) == 1, (vs, m.logtext())
        # the status names it, though the keyset cannot be exported now
        assert re.search(rf"NOT EXPORTED: .*; inactive versions: {vs[0]}$",
                         keyset_line(m.status(), "gpg")), m.status()
        res = keyfsctl(build, "-m", m.path, "activate", "gpg", str(vs[0]))
        assert res.returncode == 0, (res, m.logtext())
        assert fingerprints(home) == [fpr]
        assert versions(m, "gpg") == []
        wait_export(m, "gpg", 5)
        assert "NOT EXPORTED" not in keyset_line(m.status(), "gpg")
        members, _ = open_backup(read_pem(m, "gpg"), tmp_path, "again")
        assert files_of(members, "gpg") == files


def test_import_right_after_the_loss_is_compared_with_what_the_program_gives_now(
        build, keyfs_bin, tmp_path):
    """The keys are lost between two runs (refresh is an hour): the import
    runs backup_command first, so the backup is not taken for identical
    to the last run's members; it becomes a version, and verify says so."""
    src = tmp_path / "src.key"
    src.write_text("the key\n")
    cp = script(tmp_path / "cp.sh", f"cp {src} key\n")
    with mounted(keyfs_bin, tmp_path, f"[keyset app]\nbackup_command = {cp}\n") as m:
        m.unlock()
        wait_export(m, "app")
        saved = read_pem(m, "app")
        (tmp_path / "saved.pem").write_bytes(saved)
        src.unlink()  # lost; keyfs last ran before
        run(["cp", str(tmp_path / "saved.pem"), os.path.join(m.path, "verify", "app.pem")])
        assert re.search(r'verify "app": good copy.*on import: differs, becomes an inactive '
                         r'version \(activate runs restore_command\)', m.status()), m.status()
        run(["cp", str(tmp_path / "saved.pem"), os.path.join(m.path, "import", "app.pem")])
        assert versions(m, "app") == [1], m.logtext()
        assert "NOT EXPORTED: backup_command exited 1" in keyset_line(m.status(), "app")


def test_stdout_without_backup_stdout_reaches_neither_status_nor_log(
        build, keyfs_bin, tmp_path):
    """A key a program prints on stdout, with no backup_stdout to take it,
    is thrown away: the status and the log show only its stderr."""
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    prog = script(tmp_path / "prints.sh", f"echo {secret}\necho 'said on stderr' >&2\nexit 1\n")
    with mounted(keyfs_bin, tmp_path, f"[keyset leaky]\nbackup_command = {prog}\n") as m:
        res = keyfsctl(build, "-m", m.path, "refresh", "leaky")
        assert res.returncode == 1 and "said on stderr" in res.stderr, res
        status = m.status()
        assert "said on stderr" in status, status
        assert secret not in status and secret not in res.stderr
        assert secret not in m.logtext()


# ------------------------------------------------------------------ refresh


def next_second():
    """Waits for the wall clock's second to change (mtimes have seconds)."""
    t0 = int(time.time())
    assert wait_for(lambda: int(time.time()) > t0, 2)


def test_refresh_keeps_unchanged_export_and_takes_changes(build, keyfs_bin, tmp_path):
    src, auto_src = tmp_path / "src.key", tmp_path / "auto.key"
    src.write_text("first key\n")
    auto_src.write_text("auto first\n")
    cp = script(tmp_path / "cp.sh", f"cp {src} key\n")
    cp_auto = script(tmp_path / "cp-auto.sh", f"cp {auto_src} key\n")
    conf = (f"[keyset manual]\nbackup_command = {cp}\n"
            f"[keyset auto]\nbackup_command = {cp_auto}\nrefresh = 1\n")
    with mounted(keyfs_bin, tmp_path, conf) as m:
        m.unlock()
        wait_export(m, "manual")
        wait_export(m, "auto")
        before = read_pem(m, "manual")
        mtime = os.stat(pem_path(m, "manual")).st_mtime_ns
        for _ in range(3):
            next_second()
            res = keyfsctl(build, "-m", m.path, "refresh", "manual")
            assert res.returncode == 0, res
            assert read_pem(m, "manual") == before
            assert os.stat(pem_path(m, "manual")).st_mtime_ns == mtime
        members, _ = open_backup(before, tmp_path, "before")
        assert files_of(members, "manual") == {"key": b"first key\n"}

        # changed at the source: keyfsctl refresh brings it at once
        src.write_text("second key\n")
        res = keyfsctl(build, "-m", m.path, "refresh", "manual")
        assert res.returncode == 0, res
        after = read_pem(m, "manual")
        assert after != before
        members, _ = open_backup(after, tmp_path, "after")
        assert files_of(members, "manual") == {"key": b"second key\n"}

        # refresh = 1: the next run brings it without being asked
        auto_before = read_pem(m, "auto")
        auto_src.write_text("auto second\n")
        assert wait_for(lambda: read_pem(m, "auto") != auto_before, 10, step=0.2), \
            m.logtext()
        members, _ = open_backup(read_pem(m, "auto"), tmp_path, "auto")
        assert files_of(members, "auto") == {"key": b"auto second\n"}


# ------------------------------------------------------------------ failures


def test_failing_programs_are_reported_each_for_its_own(build, keyfs_bin, tmp_path):
    prom = tmp_path / "keyfs.prom"
    hang_pid, daemon_pid = tmp_path / "hang.pid", tmp_path / "daemon.pid"
    good = script(tmp_path / "good.sh", "echo good key > key\n")
    daemon = script(tmp_path / "daemon.sh",
                    f"sleep 1000 &\necho $! > {daemon_pid}\necho daemon key > key\nexit 0\n")
    fails = script(tmp_path / "fails.sh", "echo 'the disk is on fire' >&2\nexit 1\n")
    silent = script(tmp_path / "silent.sh", "exit 0\n")
    hangs = script(tmp_path / "hangs.sh",
                   f"echo 'waiting for ever' >&2\nsleep 1000 &\necho $! > {hang_pid}\nwait\n")
    conf = (f"[metrics]\nfile = {prom}\n"
            f"[keyset good]\nbackup_command = {good}\n"
            f"[keyset daemon]\nbackup_command = {daemon}\ntimeout = 30\n"
            f"[keyset fails]\nbackup_command = {fails}\n"
            f"[keyset silent]\nbackup_command = {silent}\n"
            f"[keyset hangs]\nbackup_command = {hangs}\ntimeout = 2\n")
    pids = []
    try:
        with mounted(keyfs_bin, tmp_path, conf) as m:
            m.unlock()
            # a daemon the program left, its stdout and stderr open, holds
            # nothing up: its keyset exports well before its timeout
            t0 = time.monotonic()
            wait_export(m, "good")
            wait_export(m, "daemon")
            assert time.monotonic() - t0 < 10
            pids.append(pid_in(daemon_pid))
            members, _ = open_backup(read_pem(m, "daemon"), tmp_path, "daemon")
            assert files_of(members, "daemon") == {"key": b"daemon key\n"}

            # the hanging one is killed after its timeout, its children too
            assert wait_for(lambda: re.search(r"^backup_command hangs: killed", m.status(),
                                              re.M), 10), m.status()
            pids.append(pid_in(hang_pid))
            assert wait_for(lambda: gone(pids[-1]), 5), "the hanging program's sleep lives on"

            status = m.status()
            assert re.search(r"^backup_command fails: exited 1 at \S+: the disk is on fire$",
                             status, re.M), status
            assert re.search(r"^backup_command silent: exited 0 but wrote nothing", status,
                             re.M), status
            assert re.search(r"^backup_command hangs: killed after the timeout, started at "
                             r"\S+: waiting for ever$", status, re.M), status
            for bad in ("fails", "silent", "hangs"):
                assert "NOT EXPORTED" in keyset_line(status, bad), status
            for ok in ("good", "daemon"):
                assert "NOT EXPORTED" not in keyset_line(status, ok), status
            names = sorted(os.listdir(m.export))
            assert "good.pem" in names and "daemon.pem" in names, names
            for bad in ("fails", "silent", "hangs"):
                assert f"{bad}.pem" not in names, names

            # while the hanging one runs again, status and the good export answer
            hang_pid.unlink()
            refresh = subprocess.Popen([os.path.join(build, "keyfsctl"), "-m", m.path,
                                        "refresh", "hangs"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            try:
                pids.append(pid_in(hang_pid))
                t = time.monotonic()
                assert "backup_command good:" in m.status()
                read_pem(m, "good")
                assert time.monotonic() - t < 1.0, "status or export waited for the run"
                out, err = refresh.communicate(timeout=20)
            finally:
                if refresh.poll() is None:
                    refresh.kill()
                    refresh.wait()
            assert refresh.returncode == 1, (out, err)
            assert err.startswith("keyfsctl: refresh hangs: killed after the timeout"), err
            assert wait_for(lambda: gone(pids[-1]), 5)

            res = keyfsctl(build, "-m", m.path, "refresh", "fails")
            assert res.returncode == 1
            assert re.match(r"keyfsctl: refresh fails: exited 1 at \S+: the disk is on fire",
                            res.stderr), res.stderr
            res = keyfsctl(build, "-m", m.path, "refresh", "good")
            assert res.returncode == 0, res

            res = keyfsctl(build, "-m", m.path, "check", "--never", "ok")
            assert res.returncode == 2, res
            assert res.stdout.startswith("KEYFS CRITICAL"), res.stdout

            def failed_series():
                text = prom.read_text() if prom.exists() else ""
                return {k for k in ("good", "daemon", "fails", "silent", "hangs")
                        if f'keyfs_keyset_command_failed{{keyset="{k}"}} 1' in text}
            assert wait_for(lambda: failed_series() == {"fails", "silent", "hangs"}, 15,
                            step=0.2), prom.read_text() if prom.exists() else "no metrics file"
            log = m.logtext()
            assert "keyset fails: backup_command exited 1" in log, log

            # each keyset's line says why it is not exported, in the
            # program's words (last: the checks above hold either way)
            status = m.status()
            assert re.search(r"NOT EXPORTED: backup_command exited 1 at \S+: "
                             r"the disk is on fire$", keyset_line(status, "fails")), status
            assert re.search(r"NOT EXPORTED: backup_command exited 0 but wrote nothing",
                             keyset_line(status, "silent")), status
            assert re.search(r"NOT EXPORTED: backup_command killed after the timeout",
                             keyset_line(status, "hangs")), status
    finally:
        for pid in pids:
            kill_if_sleep(pid)


# ------------------------------------------------------------------ hostile output


@pytest.fixture
def public_dir():
    """A directory other users can reach (tmp_path's parents are root's
    0700): the programs run as nobody live there."""
    d = tempfile.mkdtemp(prefix="keyfs-cmd-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def test_only_regular_files_the_program_made_are_members(build, keyfs_bin, tmp_path,
                                                         public_dir):
    hostile = script(os.path.join(public_dir, "hostile.sh"), """\
echo regular > key
id -u > uid
stat -c '%u %a' . > dir
[ "$KEYFS_DIR" = "$(pwd)" ] && echo "$KEYFS_KEYSET" > where
ln -s /etc/shadow shadow
echo linked > linked
ln linked linked2
ln /etc/shadow hard 2>/dev/null
mkfifo fifo
mkdir sub
echo inner > sub/inner
exit 0
""")
    theirs = script(tmp_path / "theirs.sh", "echo mine > mine\necho theirs > theirs\n"
                    "chown 1234:1234 theirs\n")
    conf = (f"[keyset hostile]\nbackup_command = {hostile}\nuser = nobody\n"
            f"[keyset theirs]\nbackup_command = {theirs}\n")
    with open("/etc/shadow", "rb") as f:
        shadow = f.read().splitlines()[0]
    with mounted(keyfs_bin, tmp_path, conf) as m:
        m.unlock()
        wait_export(m, "hostile")
        wait_export(m, "theirs")
        members, tar = open_backup(read_pem(m, "hostile"), tmp_path, "hostile")
        assert files_of(members, "hostile") == {
            "key": b"regular\n", "uid": b"65534\n", "dir": b"65534 700\n",
            "where": b"hostile\n"}, list(members)
        for name in ("key", "uid"):
            info = members[f"hostile/{name}"][1]
            assert info.isfile() and (info.mode & 0o7777, info.uid, info.gid) == (0o600, 0, 0)
        assert shadow not in tar
        assert not any(i.issym() or i.islnk() for _, i in members.values())
        members, _ = open_backup(read_pem(m, "theirs"), tmp_path, "theirs")
        assert files_of(members, "theirs") == {"mine": b"mine\n"}
        log = m.logtext()
        for name in ("shadow", "linked", "linked2", "fifo", "sub"):
            assert re.search(rf'keyset hostile: backup_command left "{name}", .*left out', log), \
                (name, log)
        assert re.search(r'keyset theirs: backup_command left "theirs", .*left out', log), log


# ------------------------------------------------------------------ restore_command


def test_failing_restore_command_fails_the_activation(build, keyfs_bin, tmp_path):
    src = tmp_path / "src.key"
    src.write_text("old key\n")
    backup = script(tmp_path / "backup.sh", f"cp {src} key\n")
    restore = script(tmp_path / "restore.sh", "echo 'the service refused the key' >&2\nexit 3\n")
    conf = f"[keyset app]\nbackup_command = {backup}\nrestore_command = {restore}\n"
    with mounted(keyfs_bin, tmp_path, conf) as m:
        m.unlock()
        wait_export(m, "app")
        old = read_pem(m, "app")
        src.write_text("new key\n")
        assert keyfsctl(build, "-m", m.path, "refresh", "app").returncode == 0
        assert read_pem(m, "app") != old
        (tmp_path / "old.pem").write_bytes(old)
        run(["cp", str(tmp_path / "old.pem"), os.path.join(m.path, "import", "app.pem")])
        vs = versions(m, "app")
        assert len(vs) == 1, (vs, m.logtext())
        n = vs[0]

        res = keyfsctl(build, "-m", m.path, "activate", "app", str(n))
        assert res.returncode != 0, res
        assert f'activate "app" version {n} failed: restore_command exited 3' in res.stderr, res
        assert "the service refused the key" in res.stderr, res
        assert "stays an inactive version" in res.stderr, res
        assert n in versions(m, "app")
        assert src.read_text() == "new key\n"
        members, _ = open_backup(read_pem(m, "app"), tmp_path, "still")
        assert files_of(members, "app") == {"key": b"new key\n"}

        # fixed, it restores: the program has the old key, export/ shows it
        script(restore, f"cp key {src}\n")
        res = keyfsctl(build, "-m", m.path, "activate", "app", str(n))
        assert res.returncode == 0, (res, m.logtext())
        assert src.read_text() == "old key\n"
        assert n not in versions(m, "app")
        kept = versions(m, "app")
        assert kept, "the members from before were not kept as a version"
        members, _ = open_backup(read_pem(m, "app"), tmp_path, "restored")
        assert files_of(members, "app") == {"key": b"old key\n"}


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("keyset, words", [
    ("path = {tmp}\nbackup_command = /bin/true\n",
     "[keyset odd]: it has either a path or a backup_command"),
    ("path = {tmp}\ninclude = *\nbackup_command = /bin/true\n",
     "[keyset odd]: it has either a path or a backup_command"),
    ("backup_command = /bin/true\nuser = no-such-user-keyfs\n",
     "[keyset odd] user: no such user on this host"),
    ("backup_command = /bin/true\non_activate = /bin/true\n",
     "[keyset odd]: a backup_command takes no include, exclude or on_activate"),
], ids=["path-and-command", "path-include-and-command", "no-such-user", "on-activate"])
def test_refused_configs(keyfs_bin, tmp_path, keyset, words):
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "live").mkdir()
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[store]\npath = {store}\n" + SEAL + "[keyset odd]\n" +
                    keyset.format(tmp=tmp_path / "live"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = run([keyfs_bin, "-f", "-c", str(conf), "-o", f"store={store}", str(mnt)],
              check=False, timeout=30)
    assert res.returncode != 0, res
    assert words in res.stderr, res.stderr
    assert not os.path.ismount(mnt)
