"""Upgrading from 0.1.0: a store sealed by the previous release (fixture made
by scripts/make-upgrade-fixture) keeps serving the same exports -- the same
bytes, inode and mtime -- so backups taken before the upgrade stay
unchanged. The fixture comes out of a git checkout, so every key file has a
new inode and ctime: the cached seals must be recognised by their content,
not resealed."""
import os
import shutil
import time

import pytest

from conftest import PASSWORD, ROOT, Mount, run

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "upgrade-0.1.0")
EXPECTED = os.path.join(FIXTURE, "expected")


def _expected():
    out = {}
    with open(os.path.join(EXPECTED, "stat.txt")) as f:
        for line in f:
            name, ino, mtime = line.split()
            with open(os.path.join(EXPECTED, name + ".pem"), "rb") as pem:
                out[name] = (pem.read(), int(ino), int(mtime))
    return out


def _copy_store(tmp_path):
    """The fixture's store as 0.1.0 left it: git keeps neither owners nor
    modes (only the x bit) nor empty directories."""
    store = str(tmp_path / "store")
    shutil.copytree(os.path.join(FIXTURE, "store"), store)
    for d, dirs, files in os.walk(store):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), 0, 0)
    os.chown(store, 0, 0)
    state = os.path.join(store, ".keyfs")
    for d, dirs, files in os.walk(state):
        os.chmod(d, 0o700)
        for n in files:
            os.chmod(os.path.join(d, n), 0o600)
    with open(os.path.join(EXPECTED, "modes.txt")) as f:
        for line in f:
            rel, mode = line.split()
            os.chmod(os.path.join(store, rel), int(mode, 8))
    return store


def _headers(store):
    cache = os.path.join(store, ".keyfs", "cache")
    out = {}
    for name in sorted(os.listdir(cache)):
        if os.path.isdir(os.path.join(cache, name)):
            continue  # .kept: seals kept for re-imports
        with open(os.path.join(cache, name), "rb") as f:
            out[name] = f.readline().decode(errors="replace").rstrip("\n")
    return out


def _settle(m, total, timeout=20):
    """Waits until every keyset is sealed and nothing is queued."""
    want = f"sealed {total}/{total} (0 queued"
    deadline = time.monotonic() + timeout
    while True:
        status = m.status()
        if want in status:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"sealing did not settle within {timeout} s:\n{status}")
        time.sleep(0.05)


def _check_exports(m, expected, store):
    for name, (data, ino, mtime) in expected.items():
        path = os.path.join(m.export, name + ".pem")
        with open(path, "rb") as f:
            got = f.read()
        st = os.stat(path)
        detail = f"{name}: headers {_headers(store)}\nlog:\n{m.logtext()}"
        assert got == data, "export resealed instead of kept; " + detail
        assert st.st_ino == ino, f"inode {st.st_ino} != {ino}; " + detail
        assert int(st.st_mtime) == mtime, f"mtime {int(st.st_mtime)} != {mtime}; " + detail
        assert st.st_size == len(data)


def test_upgrade_keeps_sealed_exports(keyfs_bin, tmp_path):
    expected = _expected()
    store = _copy_store(tmp_path)
    before = _headers(store)
    assert all(h.startswith("keyfs-seal 1 ") for h in before.values()), before
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start()
        m.unlock()
        _settle(m, len(expected))
        _check_exports(m, expected, store)
        m.stop()

        after = _headers(store)
        for name in expected:
            assert after[name].startswith(f"keyfs-seal 2 {name} "), (before, after)

        m.start()
        m.unlock()
        _settle(m, len(expected))
        _check_exports(m, expected, store)
        m.stop()
    finally:
        m.kill()


def _tar(m, tmp_path, n):
    res = run(["tar", "-cf", str(tmp_path / f"x{n}.tar"), "-C", m.path, "export"],
              check=False)
    assert res.returncode == 0 and res.stderr == "", \
        f"tar #{n} exited {res.returncode}: {res.stderr}\nstatus:\n{m.status()}"


def test_tar_right_after_password(keyfs_bin, tmp_path, store):
    """README.txt changes when the password is set and when seals finish:
    a size the kernel cached stale made tar report "File shrank"."""
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start()
        n = 0
        for _ in range(4):
            for password in (PASSWORD, "Other-Horse-8!"):
                m.unlock(password)
                _tar(m, tmp_path, n := n + 1)
                _settle(m, 2)
                _tar(m, tmp_path, n := n + 1)
        m.stop()
    finally:
        m.kill()
