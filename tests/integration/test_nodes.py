"""The node ids the kernel names files by (src/fs/fs_node.c): the kernel
forgets what it held when its caches are dropped, and keyfs frees those
nodes and makes new ones on the next lookup; a file renamed while open
is written and flushed under its new name; unlinking one forgets it."""
import errno
import hashlib
import os
import shutil

import pytest

from conftest import Mount

MANY = 300


def make_keysets(store, n):
    for i in range(n):
        d = os.path.join(store, f"n{i:03d}")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "key"), "wb") as f:
            f.write(os.urandom(32))


def listing(m):
    """name -> (inode, size, mtime) of every export, as ls -l sees it."""
    out = {}
    for name in os.listdir(m.export):
        st = os.stat(os.path.join(m.export, name))
        out[name] = (st.st_ino, st.st_size, st.st_mtime)
    return out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def drop_caches():
    """The kernel drops unused dentries and inodes, and tells keyfs with
    FORGET for each node it held."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


@pytest.fixture
def mount(keyfs_bin, tmp_path, store):
    make_keysets(store, MANY)
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start()
    try:
        m.unlock()
        yield m
        m.stop()
    finally:
        m.kill()


def test_forgotten_nodes_are_looked_up_again(mount):
    m = mount
    before = listing(m)
    assert len(before) >= MANY + 1, sorted(before)[:5]
    assert all(size > 0 for _, size, _ in before.values())
    digests = {n: sha(os.path.join(m.export, n)) for n in ("n000.pem", "n150.pem", "web.pem")}
    for _ in range(3):
        drop_caches()
        # the same names, inode numbers, sizes and times, read from
        # nodes made anew
        assert listing(m) == before
        for n, d in digests.items():
            assert sha(os.path.join(m.export, n)) == d
    # an open file's node outlives the drop: its reads keep working
    with open(os.path.join(m.export, "n007.pem"), "rb") as f:
        head = f.read(100)
        drop_caches()
        rest = f.read()
    assert hashlib.sha256(head + rest).hexdigest() == sha(os.path.join(m.export, "n007.pem"))
    assert m.proc.poll() is None


def test_rename_while_open_writes_under_the_new_name(mount, tmp_path, store):
    m = mount
    pem = tmp_path / "web.pem"
    shutil.copyfile(os.path.join(m.export, "web.pem"), pem)
    data = pem.read_bytes()
    shutil.rmtree(os.path.join(store, "web"))
    imp = os.path.join(m.path, "import")
    fd = os.open(os.path.join(imp, "part.tmp"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data[:1000])
        os.rename(os.path.join(imp, "part.tmp"), os.path.join(imp, "web.pem"))
        drop_caches()
        os.write(fd, data[1000:])
    finally:
        os.close(fd)  # the import happens here, under the new name
    assert os.path.isdir(os.path.join(store, "web"))
    assert sorted(os.listdir(imp)) == ["web.pem"]
    assert os.path.getsize(os.path.join(imp, "web.pem")) == len(data)
    # the old name is no file any more, and an unlinked one is gone
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(imp, "part.tmp"))
    os.unlink(os.path.join(imp, "web.pem"))
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(imp, "web.pem"))
    assert e.value.errno == errno.ENOENT
    assert os.listdir(imp) == []
