"""Import-path faults found in review, each checked on a real mount:
processing never holds up listing or other staged files, the work factor
of a file to unseal is capped and refused before any scrypt, unsealing
runs one file at a time, re-importing a backup changes nothing, member
times a tar cannot hold are clamped so the keyset exports again, and an
oversize file fails with EFBIG at close."""
import base64
import errno
import io
import os
import re
import shutil
import tarfile
import threading
import time

import pytest

from conftest import PASSWORD, Mount, age_decrypt, age_encrypt, age_seal, run, tree_digest

# What stock age -p seals with; keyfs itself seals at work_factor=10 here.
AGE_CLI_LOGN = 18
USTAR_TIME_MAX = 8 ** 11 - 1


def copy_in(src, dst):
    """cp, returning (exit code, stderr)."""
    res = run(["cp", str(src), str(dst)], check=False)
    return res.returncode, res.stderr


def start(keyfs_bin, tmp_path, store, ini_text):
    ini = tmp_path / "keyfs.ini"
    ini.write_text(ini_text)
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start("-c", str(ini))
    return m


@pytest.fixture
def mount18(keyfs_bin, tmp_path, store):
    """A mount that accepts stock age's work factor on import."""
    m = start(keyfs_bin, tmp_path, store, f"[import]\nmax_work_factor = {AGE_CLI_LOGN}\n")
    try:
        yield m
        m.stop()
    finally:
        m.kill()


def dearmor(pem):
    lines = pem.read_bytes().decode().splitlines()
    return base64.b64decode("".join(lines[1:-1]))


def keyset_tar(path, top, members, fmt=tarfile.GNU_FORMAT):
    """members: (name, mode, mtime, bytes)."""
    with tarfile.open(path, "w", format=fmt) as t:
        d = tarfile.TarInfo(top)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 1700000000
        t.addfile(d)
        for name, mode, mtime, data in members:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, mtime
            t.addfile(info, io.BytesIO(data))


def sealed(tmp_path, top, members, fmt=tarfile.GNU_FORMAT, armor=True, stock=False):
    """The keyset's tar, sealed at work factor 10 (conftest's age_seal()),
    or by stock age -p (stock: at its own, 18)."""
    raw = tmp_path / f"{top}.tar"
    keyset_tar(raw, top, members, fmt)
    out = tmp_path / f"{top}.{'pem' if armor else 'age'}"
    if stock:
        assert age_encrypt(raw, out, PASSWORD, armor).returncode == 0
    else:
        age_seal(raw, out, PASSWORD, armor)
    return out


def timed(fn, *args):
    t0 = time.monotonic()
    res = fn(*args)
    return res, time.monotonic() - t0


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


# ------------------------------------------------ 5: work factor cap

def test_high_work_factor_claim_is_refused_before_any_scrypt(mount, tmp_path, store):
    """A small file claiming logN 20 (1 GiB of scrypt per password) is
    EKEYREJECTED at once, with the file's work factor and the limit in
    the log, even with three passwords held."""
    mount.unlock()
    assert mount.control("unlock Other-Horse-8") == 0
    assert mount.control("unlock Third-Horse-9") == 0
    pem = tmp_path / "web.pem"
    shutil.copyfile(os.path.join(mount.export, "web.pem"), pem)
    data = dearmor(pem)
    assert b"-> scrypt " in data and b" 10\n" in data
    (tmp_path / "wf20.age").write_bytes(data.replace(b" 10\n", b" 20\n", 1))
    before = tree_digest(store)
    for where in ("import", "verify"):
        (rc, err), took = timed(copy_in, tmp_path / "wf20.age", os.path.join(mount.path, where))
        assert rc != 0 and "Key was rejected by service" in err, err
        assert took < 1.0, f"refusing took {took:.2f} s: scrypt ran"
    assert re.search(r"import failed: its work factor 20 is above the limit \d+ "
                     r"\(import.max_work_factor\)", mount.logtext()), mount.logtext()
    assert tree_digest(store) == before


def test_limit_defaults_to_the_sealing_work_factor(keyfs_bin, tmp_path, store):
    """Unset, import.max_work_factor is work_factor (10 here): stock age's
    logN 18 is refused; set to 18, the same file imports."""
    pem = sealed(tmp_path, "wfks", [("k", 0o600, 1700000000, b"k" * 32)], stock=True)
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.unlock()
        rc, err = copy_in(pem, os.path.join(m.path, "import"))
        assert rc != 0 and "Key was rejected by service" in err, err
        assert "its work factor 18 is above the limit 10" in m.logtext()
        m.stop()
    finally:
        m.kill()
    m = start(keyfs_bin, tmp_path, store, "[import]\nmax_work_factor = 18\n")
    try:
        m.unlock()
        assert copy_in(pem, os.path.join(m.path, "import")) == (0, "")
        m.stop()
    finally:
        m.kill()
    assert os.path.isdir(os.path.join(store, "wfks"))


def test_bad_limit_is_a_config_error(keyfs_bin, tmp_path, store):
    ini = tmp_path / "bad.ini"
    (tmp_path / "mnt").mkdir()
    for text, why in (("[import]\nmax_work_factor = 23\n", "from 10 to 22"),
                      ("[import]\nmax_work_factor = 9\n", "from 10 to 22"),
                      ("[seal]\nwork_factor = 14\n[import]\nmax_work_factor = 12\n",
                       "below seal.work_factor")):
        ini.write_text(text)
        res = run([keyfs_bin, "-f", "-c", str(ini), "-o", f"store={store}",
                   str(tmp_path / "mnt")], check=False)
        assert res.returncode != 0 and why in res.stderr, res.stderr


# ------------------------------------------------ 1: no processing under the stage lock

def test_listing_and_other_files_answer_while_an_import_unseals(mount18, tmp_path, store):
    """While an import tries seven passwords at logN 18 (seconds of
    scrypt), ls, stat, writes, renames and unlinks of other staged files
    answer at once; the import then succeeds with the last password."""
    m = mount18
    pem = sealed(tmp_path, "slowks", [("k", 0o600, 1700000000, b"s" * 32)], stock=True)
    assert m.control("password Wrong-Horse-1") == 0
    for i in range(2, 8):
        assert m.control(f"unlock Wrong-Horse-{i}") == 0
    assert m.control(f"unlock {PASSWORD}") == 0
    imp = os.path.join(m.path, "import")
    for name in ("other.pem", "gone.pem"):
        fd = os.open(os.path.join(imp, name), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"staged earlier\n")
        with pytest.raises(OSError) as e:
            os.close(fd)  # processed: not an age file, and stays listed
        assert e.value.errno == errno.EINVAL

    result = {}

    def slow():
        result["cp"] = copy_in(pem, os.path.join(imp, "slow.pem"))

    t = threading.Thread(target=slow)
    t.start()
    try:
        # Past the kernel's 1 s attribute and entry caches, so the calls
        # below reach keyfs; the import needs seconds more.
        time.sleep(1.5)
        assert t.is_alive(), "the slow import finished before the checks"
        names, took = timed(os.listdir, imp)
        assert "slow.pem" in names and "other.pem" in names
        assert took < 1.0, f"ls import/ took {took:.2f} s during an import"
        st, took = timed(os.stat, os.path.join(imp, "other.pem"))
        assert st.st_size == 15 and took < 1.0, f"stat took {took:.2f} s"
        st, took = timed(os.stat, os.path.join(imp, "slow.pem"))
        assert st.st_size == pem.stat().st_size and took < 1.0, f"stat took {took:.2f} s"
        (tmp_path / "junk").write_bytes(b"not an age file\n")
        (rc, err), took = timed(copy_in, tmp_path / "junk", os.path.join(imp, "junk"))
        assert rc != 0 and "Invalid argument" in err and took < 1.0, (err, took)
        _, took = timed(os.rename, os.path.join(imp, "other.pem"), os.path.join(imp, "moved.pem"))
        assert took < 1.0, f"rename took {took:.2f} s"
        _, took = timed(os.unlink, os.path.join(imp, "gone.pem"))
        assert took < 1.0, f"unlink took {took:.2f} s"
        assert t.is_alive(), "the checks did not run while the import was unsealing"
    finally:
        t.join()
    assert result["cp"] == (0, ""), result
    assert os.path.isdir(os.path.join(store, "slowks"))
    assert 'import "slowks": restored' in m.logtext()


def test_parallel_imports_unseal_one_at_a_time(mount18, tmp_path, store):
    """Two imports at logN 18 (256 MiB of scrypt each) at once: the peak
    memory is one scrypt's, not two."""
    m = mount18
    pems = [sealed(tmp_path, f"par{i}", [("k", 0o600, 1700000000, bytes([i]) * 32)], stock=True)
            for i in range(2)]
    assert m.control("password Wrong-Horse-1") == 0
    assert m.control(f"unlock {PASSWORD}") == 0
    base = rss_kb(m.proc.pid, "VmRSS")
    res = [None, None]

    def one(i):
        res[i] = copy_in(pems[i], os.path.join(m.path, "import"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert res == [(0, ""), (0, "")], res
    grew = rss_kb(m.proc.pid, "VmHWM") - base
    assert grew < 400 * 1024, f"peak RSS grew {grew} kB: scrypts ran side by side"


# ------------------------------------------------ 12: modes applied = compared = fingerprinted

def ini_fingerprint(m, tmp_path, ks):
    pem = tmp_path / f"exp-{ks}.pem"
    shutil.copyfile(os.path.join(m.export, f"{ks}.pem"), pem)
    assert age_decrypt(pem, tmp_path / f"exp-{ks}.tar", PASSWORD).returncode == 0
    with tarfile.open(tmp_path / f"exp-{ks}.tar") as t:
        ini = t.extractfile(f"{ks}/KEYSET.ini").read().decode()
        modes = {i.name: i.mode for i in t.getmembers() if i.isfile()}
    return re.search(r"^fingerprint = ([0-9a-f]{64})$", ini, re.M).group(1), modes


def test_reimporting_the_same_backup_changes_nothing(mount18, tmp_path, store):
    """Group- and world-writable members are restored 0644, and a setuid
    program without its execute bits (no "executable =" names it): the
    second import of the same backup is "identical ... nothing changed",
    makes no version, and both import lines give the export's fingerprint."""
    m = mount18
    m.unlock()
    pem = sealed(tmp_path, "modeks", [("group.key", 0o664, 1700000000, b"g" * 32),
                                      ("world.pub", 0o666, 1700000000, b"w\n"),
                                      ("own.key", 0o600, 1700000000, b"o" * 32),
                                      ("tool", 0o4775, 1700000000, b"#!/bin/sh\n")])
    imp = os.path.join(m.path, "import")
    assert copy_in(pem, os.path.join(imp, "first.pem")) == (0, "")
    modes = {f: os.stat(os.path.join(store, "modeks", f)).st_mode & 0o7777
             for f in ("group.key", "world.pub", "own.key", "tool")}
    assert modes == {"group.key": 0o644, "world.pub": 0o644, "own.key": 0o600, "tool": 0o644}
    before = tree_digest(store)
    assert copy_in(pem, os.path.join(imp, "second.pem")) == (0, "")
    log = m.logtext()
    assert 'import "modeks": identical to the active keys, nothing changed' in log, log
    assert not os.path.exists(os.path.join(store, ".keyfs", "versions", "modeks"))
    assert tree_digest(store) == before
    fprs = re.findall(r'import "modeks": .*, fingerprint ([0-9a-f]+)', log)
    assert len(fprs) == 2
    fpr, tar_modes = ini_fingerprint(m, tmp_path, "modeks")
    assert fprs == [fpr, fpr], (fprs, fpr)
    assert tar_modes["modeks/group.key"] == 0o644 and tar_modes["modeks/tool"] == 0o644


# ------------------------------------------------ 11: member times

def test_member_times_a_tar_cannot_hold_are_clamped_and_export_again(mount18, tmp_path, store):
    """A pax backup with members from 1960 and 2514 restores with times
    clamped to what ustar holds; the keyset exports, and the export
    imports back as identical."""
    m = mount18
    m.unlock()
    pem = sealed(tmp_path, "timeks", [("old.key", 0o600, -10 * 365 * 86400, b"o" * 32),
                                      ("far.key", 0o600, 1 << 34, b"f" * 32),
                                      ("now.key", 0o600, 1700000000, b"n" * 32)],
                 fmt=tarfile.PAX_FORMAT)
    assert copy_in(pem, os.path.join(m.path, "import")) == (0, "")
    got = {f: int(os.stat(os.path.join(store, "timeks", f)).st_mtime)
           for f in ("old.key", "far.key", "now.key")}
    assert got == {"old.key": 0, "far.key": USTAR_TIME_MAX, "now.key": 1700000000}, got
    exp = tmp_path / "timeks-export.pem"
    shutil.copyfile(os.path.join(m.export, "timeks.pem"), exp)  # EIO before the clamp
    assert age_decrypt(exp, tmp_path / "timeks-export.tar", PASSWORD).returncode == 0
    with tarfile.open(tmp_path / "timeks-export.tar") as t:
        times = {i.name: i.mtime for i in t.getmembers() if i.isfile()}
    assert times["timeks/old.key"] == 0 and times["timeks/far.key"] == USTAR_TIME_MAX
    assert copy_in(exp, os.path.join(m.path, "import", "again.pem")) == (0, "")
    assert 'import "timeks": identical to the active keys, nothing changed' in m.logtext()


# ------------------------------------------------ 21: EFBIG at close

def test_oversize_file_fails_with_efbig_at_close(keyfs_bin, tmp_path, store):
    """An armored backup just over a 1 MiB limit: the write past the
    limit and close(2) both fail with EFBIG, never EBADMSG."""
    m = start(keyfs_bin, tmp_path, store,
              f"[import]\nmax_work_factor = {AGE_CLI_LOGN}\nmax_size = 1048576\n")
    try:
        oversize_efbig(m, tmp_path, store)
        m.stop()
    finally:
        m.kill()


def oversize_efbig(m, tmp_path, store):
    m.unlock()
    pem = sealed(tmp_path, "bigks", [("big.key", 0o600, 1700000000, os.urandom(800_000))])
    assert pem.stat().st_size > 1 << 20
    before = tree_digest(store)
    rc, err = copy_in(pem, os.path.join(m.path, "import"))
    assert rc != 0 and "File too large" in err, err
    assert "Bad message" not in err, err
    fd = os.open(os.path.join(m.path, "verify", "big.pem"), os.O_WRONLY | os.O_CREAT, 0o600)
    data = pem.read_bytes()
    with pytest.raises(OSError) as e:
        while data:
            data = data[os.write(fd, data):]
    assert e.value.errno == errno.EFBIG
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EFBIG, e.value
    log = m.logtext()
    assert "import failed: larger than the import limit (1048576 bytes)" in log, log
    assert "verify failed: larger than the import limit (1048576 bytes)" in log, log
    assert tree_digest(store) == before
