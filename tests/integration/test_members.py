"""Members as they are: a directory-store keyset holding a certbot-shaped
tree (live/ symlinks into archive/), a 0400 file, a file with a user.*
xattr, a file of another owner and a LUKS2 header backup goes out through
export/ to stock age + GNU tar, and back in through import/, with owners,
modes, types, link targets, contents and xattrs unchanged. A keyset with a
socket in it is reported, and the rest of export/ copies cleanly."""
import hashlib
import os
import shutil
import socket

import pytest

from conftest import PASSWORD, Mount, age_decrypt, run

# Big enough for the LUKS2 header backup's export (16 MiB armored).
CONF = "[import]\nmax_size = 33554432\nmax_total = 67108864\n"


def luks_header(tmp, dst):
    """A real LUKS2 header backup (16 MiB), made fast with pbkdf2."""
    if not shutil.which("cryptsetup"):
        pytest.skip("cryptsetup is not installed (apt-get install cryptsetup-bin)")
    img, key = os.path.join(tmp, "luks.img"), os.path.join(tmp, "luks.key")
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    with open(key, "w") as f:
        f.write("not-a-real-key")
    run(["cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "-q", "--key-file", key, img])
    run(["cryptsetup", "luksHeaderBackup", img, "--header-backup-file", dst])


def make_tree(tmp, root):
    """The keyset of these tests, as an administrator would have it."""
    os.makedirs(os.path.join(root, "archive", "example.org"))
    os.makedirs(os.path.join(root, "live", "example.org"))
    os.makedirs(os.path.join(root, "renewal"))
    for n in ("cert1.pem", "privkey1.pem"):
        with open(os.path.join(root, "archive", "example.org", n), "w") as f:
            f.write(f"-----BEGIN {n}-----\n")
    os.chmod(os.path.join(root, "archive", "example.org", "privkey1.pem"), 0o600)
    for n in ("cert", "privkey"):
        os.symlink(f"../../archive/example.org/{n}1.pem",
                   os.path.join(root, "live", "example.org", f"{n}.pem"))
    with open(os.path.join(root, "renewal", "example.org.conf"), "w") as f:
        f.write("archive_dir = /etc/letsencrypt/archive/example.org\n")
    with open(os.path.join(root, "readonly.key"), "w") as f:
        f.write("read only\n")
    os.chmod(os.path.join(root, "readonly.key"), 0o400)
    with open(os.path.join(root, "labelled.key"), "w") as f:
        f.write("labelled\n")
    run(["setfattr", "-n", "user.purpose", "-v", "backup test",
         os.path.join(root, "labelled.key")])
    with open(os.path.join(root, "theirs.key"), "w") as f:
        f.write("another owner's\n")
    os.chown(os.path.join(root, "theirs.key"), 1234, 5678)
    os.chmod(os.path.join(root, "archive"), 0o700)
    luks_header(tmp, os.path.join(root, "luks-header.img"))


def describe(root):
    """Owner, group, mode, type and link target of every entry; sha256 of
    every file; every xattr: what a restore must get right."""
    listing = run(["find", root, "-mindepth", "1", "-printf", r"%P %U %G %m %y %l\n"]).stdout
    sums = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                with open(p, "rb") as fh:
                    sums[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    xattrs = run(["getfattr", "-h", "-d", "-m", "-", "-R", "."], cwd=root).stdout
    return sorted(listing.splitlines()), sums, xattrs


def untar(tar, dst):
    os.makedirs(dst)
    run(["tar", "-x", "--same-owner", "--xattrs", "--xattrs-include=*", "-f", tar, "-C", dst])


@pytest.fixture
def tree_mount(keyfs_bin, tmp_path):
    store = str(tmp_path / "store")
    os.makedirs(store)
    make_tree(str(tmp_path), os.path.join(store, "tree"))
    yield from mounted_with(keyfs_bin, tmp_path, store, CONF)


def mounted_with(keyfs_bin, tmp_path, store, text, **attrs):
    """A fixture's body: keyfs started with text as its config file (m.conf),
    attrs set on the Mount; stopped cleanly after the test."""
    conf = tmp_path / "keyfs.ini"
    conf.write_text(text)
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.conf = str(conf)
    for k, v in attrs.items():
        setattr(m, k, v)
    m.start("-c", m.conf)
    try:
        yield m
        m.stop()
    finally:
        m.kill()


def read_export(m, name):
    with open(os.path.join(m.export, name), "rb") as f:
        return f.read()


def export_untarred(m, tmp_path, name):
    """NAME.pem copied out of export/, opened with age -d and unpacked
    with GNU tar: the copy's path and the directory it went into."""
    pem = tmp_path / f"{name}.pem"
    pem.write_bytes(read_export(m, f"{name}.pem"))
    res = age_decrypt(pem, tmp_path / f"{name}.tar", PASSWORD)
    assert res.returncode == 0, res.stdout
    out = str(tmp_path / "out")
    untar(str(tmp_path / f"{name}.tar"), out)
    return pem, out


def test_tree_round_trips_through_age_tar_and_import(tree_mount, tmp_path):
    m = tree_mount
    src = os.path.join(m.store, "tree")
    want = describe(src)
    assert "live/example.org/cert.pem 0 0 777 l ../../archive/example.org/cert1.pem" in want[0]
    assert "theirs.key 1234 5678 644 f " in want[0] and "user.purpose" in want[2]
    m.unlock()
    pem, out = export_untarred(m, tmp_path, "tree")
    os.unlink(os.path.join(out, "tree", "KEYSET.ini"))
    os.unlink(os.path.join(out, "tree", "KEYSET.sig"))
    assert describe(os.path.join(out, "tree")) == want

    # Restore into an emptied store: the same tree comes back.
    shutil.rmtree(src)
    shutil.copyfile(pem, os.path.join(m.path, "import", "tree.pem"))
    assert os.path.isdir(src)
    assert describe(src) == want
    assert "tree" in m.status()


def test_unchanged_tree_exports_the_same_bytes(tree_mount):
    m = tree_mount
    m.unlock()
    first = read_export(m, "tree.pem")
    assert read_export(m, "tree.pem") == first
    m.stop()
    m.start("-c", m.conf)
    m.unlock()
    assert read_export(m, "tree.pem") == first


def socket_reported(m, tmp_path, sock, bad, good):
    """With a socket at sock, keyset bad is reported and left out of
    export/, and rsync -a copies the rest (good) without an error."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    try:
        m.unlock()
        status = m.status()
        assert bad in status and "socket" in status, status
        dst = tmp_path / "dst"
        res = run(["rsync", "-a", m.export + "/", str(dst) + "/"], check=False)
        assert res.returncode == 0, res.stderr
        assert f"{good}.pem" in os.listdir(dst)
        assert f"{bad}.pem" not in os.listdir(dst)
    finally:
        s.close()


def test_keyset_with_a_socket_is_reported_and_rsync_succeeds(tree_mount, tmp_path):
    m = tree_mount
    sock_dir = os.path.join(m.store, "sock")
    os.makedirs(sock_dir)
    with open(os.path.join(sock_dir, "key"), "w") as f:
        f.write("k\n")
    socket_reported(m, tmp_path, os.path.join(sock_dir, "agent.sock"), "sock", "tree")


def test_xattr_names_a_tar_would_change_are_not_carried(keyfs_bin, tmp_path):
    """A key with user.a%b and user.c=d besides user.purpose: a pax tar
    holds such names %-encoded (user.a%25b), which libarchive, and so an
    import, reads back as they stand, so the export leaves them out and
    carries the rest; its tar, unpacked by GNU tar and imported into an
    emptied store, gives the key back with user.purpose alone, and no
    attribute of a changed name anywhere."""
    store = str(tmp_path / "store")
    key = os.path.join(store, "odd", "host.key")
    os.makedirs(os.path.dirname(key))
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\n")
    for name, value in (("user.purpose", b"tls"), ("user.a%b", b"1"), ("user.c=d", b"2")):
        os.setxattr(key, name, value)
    for m in mounted_with(keyfs_bin, tmp_path, store, CONF):
        m.unlock()
        pem, out = export_untarred(m, tmp_path, "odd")
        assert sorted(os.listxattr(os.path.join(out, "odd", "host.key"))) == ["user.purpose"]
        shutil.rmtree(os.path.dirname(key))
        shutil.copyfile(pem, os.path.join(m.path, "import", "odd.pem"))
        assert sorted(os.listxattr(key)) == ["user.purpose"], m.logtext()
        assert os.getxattr(key, "user.purpose") == b"tls"
        with open(key) as f:
            assert f.read() == "-----BEGIN PRIVATE KEY-----\n"
