"""Many keysets, and changes the store watcher must see: 20 000 keysets
list, rsync twice (the second sends nothing), and one keyset changed on
disk is re-exported within 2 s and is all the next rsync sends; a member
rewritten with its size and mtime kept still gives a new export.

The 20 000-keyset test runs once, with the first build of KEYFS_BUILDS
(like test_package, it takes no build fixture): it is about the daemon's
data structures, not about memory errors a second build would find."""
import os
import re
import time

import pytest

from conftest import BUILDS, Mount, recipients_file, run, wait_for

MANY = 20000


def rsync(src, dst):
    res = run(["rsync", "-a", "--stats", src + "/", dst + "/"])
    files = re.search(r"^Number of regular files transferred: ([\d,]+)$", res.stdout, re.M)
    size = re.search(r"^Total transferred file size: ([\d,]+)", res.stdout, re.M)
    names = run(["rsync", "-a", "-n", "-i", src + "/", dst + "/"]).stdout
    return int(files.group(1).replace(",", "")), int(size.group(1).replace(",", "")), names


def make_keysets(store, n):
    for i in range(n):
        d = os.path.join(store, f"t{i:05d}")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "key"), "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            fh.write(os.urandom(32))


def changed(path, before):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def test_twenty_thousand_keysets(tmp_path, store):
    make_keysets(store, MANY)
    os.mkfifo(os.path.join(store, "t10000", "pipe"))  # not a key: left out, reported
    m = Mount(os.path.join(BUILDS[0], "keyfs"), str(tmp_path), store)
    try:
        # sealed to a public key: no scrypt per keyset
        m.start(opts=f"recipients={recipients_file(tmp_path)}")
        # Names alone, first thing after the mount: keysets the first
        # scan has not reached yet are examined for the listing.
        names = os.listdir(m.export)
        assert len(names) == MANY - 1 + 3 and "t10000.pem" not in names
        listed = run(["ls", "-l", m.export]).stdout.splitlines()
        assert len(listed) == 1 + MANY - 1 + 3  # total line; README.txt, web, db
        assert not any(line.endswith(" t10000.pem") for line in listed)
        # Names alone: the kernel asks READDIRPLUS only for the first
        # batch, then plain READDIR, which answers from known problems.
        # Listed by offset across many requests: each name once.
        for names in (os.listdir(m.export), run(["ls", m.export]).stdout.split()):
            assert len(names) == len(set(names)) == MANY - 1 + 3
            assert {f"t{i:05d}.pem" for i in range(0, MANY, 997)} <= set(names)
            assert "t10000.pem" not in names
        # a keyset that goes bad while mounted leaves the names too, and
        # comes back once mended
        bad = os.path.join(store, "t15000", "pipe")
        os.mkfifo(bad)
        assert wait_for(lambda: "t15000.pem" not in os.listdir(m.export), 2)
        assert "t15000.pem" not in run(["ls", m.export]).stdout.split()
        assert re.search(r"^  t15000 +NOT EXPORTED: .*a FIFO", m.status(), re.M), m.status()[-2000:]
        os.unlink(bad)
        assert wait_for(lambda: "t15000.pem" in os.listdir(m.export), 2)
        dst = str(tmp_path / "copy")
        files, _, _ = rsync(m.export, dst)
        assert files == MANY - 1 + 3
        files, size, names = rsync(m.export, dst)
        assert (files, size) == (0, 0), names
        pem = os.path.join(m.export, "t01234.pem")
        before = os.stat(pem)
        with open(os.path.join(store, "t01234", "key"), "ab") as f:
            f.write(b"rotated")
        assert wait_for(lambda: changed(pem, before), 2), "not re-exported within 2 s"
        files, _, names = rsync(m.export, dst)
        assert files == 1, names
        assert os.path.exists(os.path.join(dst, "t01234.pem"))
        m.stop()
    finally:
        m.kill()


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: os.path.basename(b.rstrip("/")))
def test_same_size_and_mtime_rewrite_is_seen(build, tmp_path, store):
    key = os.path.join(store, "db", "master.key")
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        m.start(opts=f"recipients={recipients_file(tmp_path)}")
        pem = os.path.join(m.export, "db.pem")
        first = open(pem, "rb").read()
        st = os.stat(key)
        data = open(key, "rb").read()
        with open(key, "r+b") as f:
            f.write(bytes(b ^ 0x5A for b in data[:8]) + data[8:])
        # the old size and mtime back, as a careless copy tool leaves them
        os.utime(key, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(key).st_size == st.st_size
        assert wait_for(lambda: open(pem, "rb").read() != first, 5), "rewrite not seen"
        m.stop()
    finally:
        m.kill()


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: os.path.basename(b.rstrip("/")))
def test_a_change_deep_in_a_keyset_is_seen(build, tmp_path, store):
    """The watcher reads a directory for subdirectories to watch only where
    its link count says there are any. Once watched, stamps come from
    memory and only an event tells a change: a rewrite two levels down in
    a keyset that had subdirectories at the start, and one in a
    subdirectory made later in a keyset that had none, are both seen."""
    deep = os.path.join(store, "certs", "live", "example.org")
    os.makedirs(deep, 0o700)
    with open(os.path.join(deep, "privkey.pem"), "wb") as f:
        f.write(os.urandom(64))
    later = os.path.join(store, "db", "later")

    def rewrite(path):
        with open(path, "wb") as f:
            f.write(os.urandom(64))

    def changes(pem, change):
        before = open(pem, "rb").read()
        change()
        return wait_for(lambda: open(pem, "rb").read() != before, 5)
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        m.start(opts=f"recipients={recipients_file(tmp_path)}")
        certs = os.path.join(m.export, "certs.pem")
        db = os.path.join(m.export, "db.pem")
        assert changes(certs, lambda: rewrite(os.path.join(deep, "privkey.pem")))
        assert changes(db, lambda: (os.mkdir(later, 0o700),
                                    rewrite(os.path.join(later, "extra.key"))))
        assert changes(db, lambda: rewrite(os.path.join(later, "extra.key")))
        m.stop()
    finally:
        m.kill()


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: os.path.basename(b.rstrip("/")))
def test_a_backup_right_after_the_start_has_the_changes_made_while_stopped(build, tmp_path,
                                                                          store):
    """Right after a mount, the store watcher watches every keyset, then
    stamps them ahead of a listing, which stamps what it reaches first
    itself. An rsync started with the mount, racing both, sends exactly
    the exports of the keysets changed while keyfs was stopped (at the
    start, the middle and the end of the list), with their new keys; the
    rest keep their seals, and no keyset is left out. (README.txt tells
    of this mount, so it is sent too.) The clean stop recorded what each
    keyset directory held (STATE/walks), so the first stamps stat the
    files without listing the directories: a key appended to is seen
    there, and a file added beside a key is seen although the directory's
    mtime was set back, as its change time moved."""
    n = 3000
    make_keysets(store, n)
    changed_ks = ("t00000", f"t{n // 2:05d}", f"t{n - 1:05d}")
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    opts = f"recipients={recipients_file(tmp_path)}"
    dst = str(tmp_path / "copy")
    try:
        m.start(opts=opts)
        cache = os.path.join(store, ".keyfs", "cache")
        assert wait_for(lambda: len(os.listdir(cache)) >= n + 2, 120), m.logtext()[-2000:]
        files, _, _ = rsync(m.export, dst)
        assert files == n + 3
        # a directory changed in the last 2 s before a stop gets no record
        newest = os.stat(os.path.join(store, f"t{n - 1:05d}")).st_ctime
        time.sleep(max(0.0, 2.5 - (time.time() - newest)))
        m.stop()
        with open(os.path.join(store, ".keyfs", "walks")) as f:
            assert f.read().endswith(f"\nend {n + 2}\n")  # and db, web
        rotated = (changed_ks[0], changed_ks[2])
        for ks in rotated:
            with open(os.path.join(store, ks, "key"), "ab") as f:
                f.write(b"rotated while stopped " + ks.encode())
        mid = os.path.join(store, changed_ks[1])
        st = os.stat(mid)
        with open(os.path.join(mid, "extra"), "wb") as f:
            f.write(b"added while stopped")
        os.utime(mid, ns=(st.st_atime_ns, st.st_mtime_ns))
        m.start(opts=opts)
        sent = run(["rsync", "-a", "-i", m.export + "/", dst + "/"]).stdout.split("\n")
        sent = sorted(line.split()[1] for line in sent
                      if line.startswith(">f") and line.endswith(".pem"))
        assert sent == [f"{ks}.pem" for ks in changed_ks], sent
        assert len(os.listdir(dst)) == n + 3
        for ks in changed_ks:
            run(["age", "-d", "-i", str(tmp_path / "id.txt"), "-o", str(tmp_path / f"{ks}.tar"),
                 os.path.join(dst, f"{ks}.pem")])
        for ks in rotated:
            key = run(["tar", "-xOf", str(tmp_path / f"{ks}.tar"), "--wildcards", "*/key"],
                      text=False).stdout
            assert key.endswith(b"rotated while stopped " + ks.encode())
        extra = run(["tar", "-xOf", str(tmp_path / f"{changed_ks[1]}.tar"), "--wildcards",
                     "*/extra"], text=False).stdout
        assert extra == b"added while stopped"
        m.stop()
    finally:
        m.kill()
