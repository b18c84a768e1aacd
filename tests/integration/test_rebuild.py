"""Restoring onto a rebuilt server: what an administrator meets in a
disaster. A live keyset that would back up nothing is a problem of that
keyset, never an empty backup that monitoring counts as done."""
import grp
import io
import os
import pwd
import re
import shutil
import tarfile
import time

from conftest import PASSWORD, Mount, age_decrypt, age_identity, run, wait_for
from test_members import mounted_with
from test_monitoring import CRITICAL, WARNING, check


def test_include_matching_nothing_is_an_error_not_an_empty_backup(build, keyfs_bin, tmp_path):
    """A typo in include (ssh_host_*_kye): the keyset is reported with the
    reason in the status, README.txt and the log, is not offered as an
    export, and keyfsctl check is CRITICAL; a keyset beside it still
    exports."""
    ssh = tmp_path / "etc-ssh"
    ssh.mkdir()
    (ssh / "ssh_host_ed25519_key").write_text("private\n")
    wg = tmp_path / "wg"
    wg.mkdir()
    (wg / "wg0.conf").write_text("[Interface]\n")
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf = (f"[keyset ssh]\npath = {ssh}\ninclude = ssh_host_*_kye\n"
            f"[keyset wg]\npath = {wg}\ninclude = *.conf\n")
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        assert sorted(os.listdir(m.export)) == ["README.txt", "wg.pem"]
        status = m.status()
        assert re.search(rf"^  ssh +NOT EXPORTED: include matches no file below {ssh}$",
                         status, re.M), status
        readme = os.path.join(m.export, "README.txt")
        assert wait_for(lambda: "ssh: NOT EXPORTED" in open(readme).read(), 20)
        with open(os.path.join(m.export, "wg.pem"), "rb") as f:
            assert f.read(10) == b"-----BEGIN"
        code, line = check(build, m)
        assert code == CRITICAL and "cannot be exported" in line, line


def test_missing_path_is_an_error(build, keyfs_bin, tmp_path):
    """A live path that does not exist (yet) is reported and CRITICAL."""
    store = str(tmp_path / "store")
    os.makedirs(store)
    gone = tmp_path / "no-such-dir"
    for m in mounted_with(keyfs_bin, tmp_path, store,
                          f"[keyset wg]\npath = {gone}\ninclude = *.conf\n"):
        m.unlock()
        assert os.listdir(m.export) == ["README.txt"]
        assert re.search(r"^  wg +NOT EXPORTED: path .*No such file or directory$",
                         m.status(), re.M), m.status()
        code, line = check(build, m)
        assert code == CRITICAL, line


def test_owners_are_restored_by_name(keyfs_bin, tmp_path):
    """As GNU tar does: the recorded user and group names are looked up
    here (nobody and nogroup, recorded with other numbers, come back as
    this host's); a name unknown here keeps its number, and the import
    says so."""
    key, pub = age_identity(tmp_path)
    raw = tmp_path / "own.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("own")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        for name, uname, uid, gname, gid in (
                ("known.key", "nobody", 9999, "nogroup", 9998),
                ("unknown.key", "keyfs-no-such-user", 4242, "keyfs-no-such-group", 4243)):
            i = tarfile.TarInfo(f"own/{name}")
            i.size, i.mode, i.mtime = 4, 0o640, 1700000000
            i.uid, i.uname, i.gid, i.gname = uid, uname, gid, gname
            t.addfile(i, io.BytesIO(b"key\n"))
    pem = tmp_path / "own.pem"
    run(["age", "-a", "-r", pub, "-o", str(pem), str(raw)])
    live = tmp_path / "live"
    live.mkdir()
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf = f"[identity]\nfile = {key}\n[keyset own]\npath = {live}\ninclude = *.key\n"
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        shutil.copyfile(pem, os.path.join(m.path, "import", "own.pem"))
        # made by hand, so nothing vouches for it: installed on consent
        assert m.control("activate own 1 unauthenticated") == 0, m.logtext()
        known = os.stat(live / "known.key")
        assert (known.st_uid, known.st_gid) == (pwd.getpwnam("nobody").pw_uid,
                                                grp.getgrnam("nogroup").gr_gid)
        unknown = os.stat(live / "unknown.key")
        assert (unknown.st_uid, unknown.st_gid) == (4242, 4243)
        line = 'import "own": differs from the active keys: stored as inactive version 1'
        log = m.logtext()
        assert line in log, log
        assert ("1 member(s) restored with their recorded numbers: user keyfs-no-such-user, "
                "group keyfs-no-such-group unknown here") in log, log
        assert "recorded numbers" in m.status()


def test_activate_tells_the_truth(build, keyfs_bin, tmp_path):
    """A hook that fails, or cannot start, fails activate (the keys stay
    installed and keyfsctl says so); an unknown version is named with the
    versions there are."""
    key, pub = age_identity(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    (live / "a.key").write_text("old\n")
    stage = tmp_path / "stage" / "hk"
    stage.mkdir(parents=True)
    (stage / "a.key").write_text("new\n")
    raw = tmp_path / "hk.tar"
    run(["tar", "-C", str(tmp_path / "stage"), "-cf", str(raw), "hk"])
    pem = tmp_path / "hk.pem"
    run(["age", "-a", "-r", pub, "-o", str(pem), str(raw)])
    store = str(tmp_path / "store")
    os.makedirs(store)
    for hook, says in (("/bin/false", "exited 1"), ("/nonexistent/reload", "No such file")):
        conf = (f"[identity]\nfile = {key}\n[keyset hk]\npath = {live}\ninclude = *.key\n"
                f"on_activate = {hook}\n")
        for m in mounted_with(keyfs_bin, tmp_path, store, conf):
            (live / "a.key").write_text("old\n")
            shutil.copyfile(pem, os.path.join(m.path, "import", "hk.pem"))
            res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "activate", "hk", "1"],
                      check=False)
            assert res.returncode != 0, res
            assert "unauthenticated backup (fingerprint " in res.stderr, res.stderr
            assert (live / "a.key").read_text() == "old\n"
            res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "activate",
                       "--unauthenticated", "hk", "1"], check=False)
            assert res.returncode != 0, res
            assert "version 1 is installed, but on_activate failed" in res.stderr, res.stderr
            assert says in res.stderr, res.stderr
            assert (live / "a.key").read_text() == "new\n"
            assert re.search(rf"^on_activate hk: .*{says}", m.status(), re.M), m.status()
            m.unlock()
            code, line = check(build, m, "--never", "ok")
            assert code == WARNING and "on_activate failed (see keyfsctl status): hk" in line, line
            res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "activate", "hk", "7"],
                      check=False)
            assert res.returncode != 0
            assert 'no such version; inactive versions of "hk": 2' in res.stderr, res.stderr
            res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "activate", "nosuch", "1"],
                      check=False)
            assert res.returncode != 0
            assert 'no keyset "nosuch"; keysets: hk' in res.stderr, res.stderr
            shutil.rmtree(os.path.join(store, ".keyfs", "versions"), ignore_errors=True)


def test_one_keyfs_per_store(keyfs_bin, tmp_path):
    """A second keyfs on a served store fails, naming the pid and the
    mountpoint of the first, after waiting for it to stop; one started
    right after an unmount waits for the first to finish writing its
    records instead of racing it."""
    store = str(tmp_path / "store")
    os.makedirs(os.path.join(store, "ks"))
    with open(os.path.join(store, "ks", "a.key"), "w") as f:
        f.write("key\n")
    first = Mount(keyfs_bin, str(tmp_path / "one"), store)
    os.makedirs(first.tmp, exist_ok=True)
    first.start()
    try:
        other = str(tmp_path / "two")
        os.makedirs(other)
        t0 = time.monotonic()
        res = run([keyfs_bin, "-f", "-o", f"store={store},work_factor=10", other], check=False)
        took = time.monotonic() - t0
        assert res.returncode != 0 and not os.path.ismount(other)
        assert f"is served by keyfs pid {first.proc.pid} (mounted on {first.path})" in res.stderr, \
            res.stderr
        assert 9 < took < 20, took
        # unmounted, then at once a new one: it waits for the first to end
        run(["fusermount3", "-u", first.path])
        second = Mount(keyfs_bin, str(tmp_path / "three"), store)
        second.start()
        assert first.proc.wait(20) == 0
        second.stop()
    finally:
        first.kill()


def test_missing_path_is_made_as_it_was(keyfs_bin, tmp_path):
    """A rebuilt host has no /etc/ssl/private: the backup records the
    keyset's own directory (0710, group by name), the restore makes it so,
    and makes the missing parents root's 0755, saying how many it made."""
    etc = tmp_path / "etc"
    private = etc / "ssl" / "private"
    private.mkdir(parents=True)
    os.chmod(etc / "ssl", 0o755)
    gid = grp.getgrnam("nogroup").gr_gid
    os.chown(private, 0, gid)
    os.chmod(private, 0o710)
    key = private / "site.key"
    key.write_bytes(b"private key\n")
    os.chown(key, 0, gid)
    os.chmod(key, 0o640)
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf = f"[keyset ssl]\npath = {private}\ninclude = *.key\n"
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        pem = tmp_path / "ssl.pem"
        pem.write_bytes(open(os.path.join(m.export, "ssl.pem"), "rb").read())
        # What stock tar makes of it: the top directory as it was.
        res = age_decrypt(pem, tmp_path / "ssl.tar", PASSWORD)
        assert res.returncode == 0, res.stdout
        with tarfile.open(tmp_path / "ssl.tar") as t:
            top = t.getmember("ssl")
            assert (top.mode, top.uname, top.gname) == (0o710, "root", "nogroup")

        shutil.rmtree(etc)
        shutil.copyfile(pem, os.path.join(m.path, "import", "ssl.pem"))
        st = os.stat(private)
        assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o710", 0, gid)
        for parent in (etc, etc / "ssl"):
            st = os.stat(parent)
            assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o755", 0, 0)
        st = os.stat(key)
        assert (oct(st.st_mode & 0o7777), st.st_gid) == ("0o640", gid)
        assert key.read_bytes() == b"private key\n"
        log = m.logtext()
        assert 'import "ssl": restored (new keyset, active); 3 missing directories made' in log, log
        assert f"made missing directory {etc} (root, 0755)" in log, log
        # Restored as backed up: the same backup again changes nothing.
        shutil.copyfile(pem, os.path.join(m.path, "import", "ssl.pem"))
        assert 'import "ssl": identical to the active keys' in m.logtext()

        # The directory's own mode is part of the backup: a change reseals.
        before = open(os.path.join(m.export, "ssl.pem"), "rb").read()
        os.chmod(private, 0o750)
        assert wait_for(lambda: open(os.path.join(m.export, "ssl.pem"), "rb").read() != before,
                        20)
