"""export/README.txt as a restorer reads it, perhaps years later from a
backup, perhaps on a host without keyfs: no heading without lines under
it, the same size whatever the number of keysets (the exports beside it
are the index), every keyset without a backup named, and a recipe for age
and GNU tar that gives back owners by name, modes, times, user.* xattrs
and POSIX ACLs when run exactly as written."""
import os
import re
import shlex
import shutil
import stat
import time

import pytest

from conftest import PASSWORD, Mount, age_decrypt, run, wait_for
from test_members import mounted_with


def readme(m):
    with open(os.path.join(m.export, "README.txt")) as f:
        return f.read()


def wait_sealed(m, n, timeout=20):
    deadline = time.monotonic() + timeout
    while f"sealed {n}/{n} (0 queued" not in (status := m.status()):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def headings(text):
    """(heading, the first non-blank line below it) for every heading: a
    line underlined with - or =, or a line ending in ':' before a blank
    line."""
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines[:-1]):
        underlined = re.fullmatch(r"-+|=+", lines[i + 1]) is not None and line
        if underlined or (line.endswith(":") and not lines[i + 1]):
            rest = [x for x in lines[i + 1 + bool(underlined):] if x]
            found.append((line, rest[0] if rest else ""))
    return found


def assert_no_empty_heading(text):
    for heading, below in headings(text):
        if heading == "keyfs key backups":
            continue
        assert below.startswith("  "), f"heading {heading!r} has nothing below it:\n{text}"


def test_no_empty_heading(mount):
    """Nobody has a sealer of their own and every keyset is exported: no
    "sealed by their own" heading, and one line saying nothing is
    missing. A keyset with its own password brings the heading, with it
    under it."""
    mount.unlock()
    wait_sealed(mount, 2)
    text = readme(mount)
    assert "sealed by their own" not in text, text
    assert "Keysets without a backup here: none" in text, text
    assert "-----------------------------" not in text, text
    assert_no_empty_heading(text)

    assert mount.control("password --keyset db Other-Horse-8!") == 0
    assert wait_for(lambda: "sealed by their own" in readme(mount), 10), readme(mount)
    text = readme(mount)
    assert "but these, sealed by their own:\n\n    db.pem: its own password\n" in text, text
    assert_no_empty_heading(text)


def test_size_does_not_grow_with_keysets(keyfs_bin, tmp_path, store):
    """README.txt names no keyset that is exported: over 42 keysets its
    text is the text it has over 2 (the same store key signing both)."""
    texts = []
    key = None
    for n, extra in ((2, 0), (42, 40)):
        top = tmp_path / f"s{n}"
        top.mkdir()
        st = str(top / "store")
        shutil.copytree(store, st)
        for i in range(extra):
            os.makedirs(os.path.join(st, f"k{i:03}"))
            with open(os.path.join(st, f"k{i:03}", "key"), "w") as f:
                f.write(f"key {i}\n")
        if key:
            os.makedirs(os.path.join(st, ".keyfs"), mode=0o700)
            shutil.copy2(key, os.path.join(st, ".keyfs", "signing.key"))
        key = os.path.join(st, ".keyfs", "signing.key")
        m = Mount(keyfs_bin, str(top), st)
        try:
            m.start()
            m.unlock()
            wait_sealed(m, n)
            assert len(os.listdir(m.export)) == n + 1
            texts.append(readme(m))
            m.stop()
        finally:
            m.kill()
    assert texts[0] == texts[1], texts


def broken_live_keysets(tmp_path):
    """A config of two live keysets without a backup: ssh's include has a
    typo, wg's path does not exist. Returns (config, ssh path, wg path)."""
    ssh = tmp_path / "etc-ssh"
    ssh.mkdir()
    (ssh / "ssh_host_ed25519_key").write_text("private\n")
    gone = tmp_path / "no-such-dir"
    return (f"[keyset ssh]\npath = {ssh}\ninclude = ssh_host_*_kye\n"
            f"[keyset wg]\npath = {gone}\ninclude = *.conf\n"), ssh, gone


def test_keysets_without_a_backup_are_named(keyfs_bin, tmp_path):
    """A live keyset whose path is missing, and one whose include matches
    nothing, are each named with the reason under the heading, once
    export/ was listed (as cp -r, rsync, tar, restic and borg do before
    they read README.txt)."""
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf, ssh, gone = broken_live_keysets(tmp_path)
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        assert os.listdir(m.export) == ["README.txt"]
        assert wait_for(lambda: "wg: NOT EXPORTED" in readme(m) and
                        "ssh: NOT EXPORTED" in readme(m), 20), readme(m)
        text = readme(m)
        assert "Keysets without a backup here\n-----------------------------\n\n" in text, text
        assert "none" not in text.split("Keysets without a backup here")[1].split("\n")[0]
        assert f"  ssh: NOT EXPORTED, no backup here: include matches no file below {ssh}\n" \
            in text, text
        assert re.search(rf"^  wg: NOT EXPORTED, no backup here: path {re.escape(str(gone))}"
                         r".*No such file or directory$", text, re.M), text
        assert_no_empty_heading(text)


def test_readme_read_alone_names_keysets_without_a_backup(keyfs_bin, tmp_path):
    """cat export/README.txt right after mounting, nothing listed first."""
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf, _, _ = broken_live_keysets(tmp_path)
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        assert wait_for(lambda: "wg: NOT EXPORTED" in readme(m) and
                        "ssh: NOT EXPORTED" in readme(m), 5), readme(m)


def recipe(text, command):
    """The README.txt line that runs command, without its comment."""
    lines = [line.split("#")[0].strip() for line in text.splitlines()
             if line.startswith(f"  {command} ")]
    assert len(lines) == 1, text
    return lines[0]


def test_tar_recipe_restores_owners_by_name_modes_and_xattrs(keyfs_bin, tmp_path):
    """The recipe without keyfs, run exactly as README.txt writes it, as
    root on a host where the archive's user and group names have other
    numbers (a mount namespace with its own /etc/passwd and /etc/group):
    owners come back by name, with modes, times, a user.* xattr and a
    POSIX ACL."""
    for tool in ("age", "setfacl", "unshare", "script"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}")
    live = tmp_path / "ssl"
    private = live / "private"
    private.mkdir(parents=True)
    key = private / "host.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    os.chown(key, 65534, 65534)            # nobody:nogroup here
    os.chmod(key, 0o640)
    os.setxattr(key, "user.purpose", b"tls")
    run(["setfacl", "-m", "u:0:r", str(key)])
    os.chmod(private, 0o710)
    os.chown(private, 0, 65534)
    os.utime(key, (1700000000, 1700000000))
    acl = os.getxattr(key, "system.posix_acl_access")
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf = f"[keyset sm]\npath = {live}\ninclude = private/*.key\n"
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        wait_sealed(m, 1)
        text = readme(m)
        shutil.copy(os.path.join(m.export, "sm.pem"), tmp_path / "sm.pem")

    # age -d -o sm.tar sm.pem, with the passphrase typed on a terminal
    assert recipe(text, "age").startswith("age -d -o sm.tar sm.pem")
    res = age_decrypt(tmp_path / "sm.pem", tmp_path / "sm.tar", PASSWORD)
    assert res.returncode == 0, res.stdout + res.stderr

    tar = recipe(text, "tar")
    assert "--same-owner" in tar and "--xattrs" in tar and "--acls" not in tar, tar
    # The rebuilt host: the same names, other numbers.
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "nobody:x:4711:4712:nobody:/nonexistent:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:4712:\n")
    out = tmp_path / "restored"
    out.mkdir()
    script = (f"mount --bind {etc}/passwd /etc/passwd && mount --bind {etc}/group /etc/group"
              f" && cd {shlex.quote(str(tmp_path))} && cd restored && cp ../sm.tar . && {tar}")
    res = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
              check=False)
    assert res.returncode == 0, res.stdout + res.stderr

    got = out / "sm" / "private" / "host.key"
    st = os.lstat(got)
    assert (st.st_uid, st.st_gid) == (4711, 4712), (st.st_uid, st.st_gid)
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert st.st_mtime == 1700000000
    assert got.read_text() == "-----BEGIN PRIVATE KEY-----\n"
    assert os.getxattr(got, "user.purpose") == b"tls"
    assert os.getxattr(got, "system.posix_acl_access") == acl
    d = os.lstat(out / "sm" / "private")
    assert stat.S_IMODE(d.st_mode) == 0o710 and (d.st_uid, d.st_gid) == (0, 4712), d
    ini = (out / "sm" / "KEYSET.ini").read_text()
    assert re.search(r"^fingerprint = [0-9a-f]{64}$", ini, re.M), ini
