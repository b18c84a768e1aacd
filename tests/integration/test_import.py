"""Import and verify: sealed files written with real tools restore keysets,
bad ones fail at close(2) with the documented errno and change nothing."""
import errno
import io
import os
import shutil
import tarfile

import pytest

from conftest import PASSWORD, Mount, age_decrypt, age_encrypt, age_seal, run, tree_digest


@pytest.fixture
def mount(keyfs_bin, tmp_path, store):
    """conftest's mount, also opening what stock age -p seals (work factor
    18): import.max_work_factor defaults to the sealing work factor, 10
    in these tests."""
    ini = tmp_path / "keyfs.ini"
    ini.write_text("[import]\nmax_work_factor = 18\n")
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start("-c", str(ini))
    try:
        yield m
        m.stop()
    finally:
        m.kill()


def export(mount, tmp_path, ks="web"):
    dst = tmp_path / f"{ks}.pem"
    shutil.copyfile(os.path.join(mount.export, f"{ks}.pem"), dst)
    return dst


def copy_in(src, dst):
    """cp, returning (exit code, stderr)."""
    res = run(["cp", str(src), str(dst)], check=False)
    return res.returncode, res.stderr


def sealed_tar(tmp_path, members, name="craft", password=PASSWORD, armor=True):
    """A tar built member by member (name -> bytes, or a TarInfo), sealed
    with conftest's age_seal()."""
    raw = tmp_path / f"{name}.tar"
    with tarfile.open(raw, "w", format=tarfile.GNU_FORMAT) as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                path, data = m
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o600
                t.addfile(info, io.BytesIO(data))
    out = tmp_path / f"{name}.pem"
    age_seal(raw, out, password, armor)
    return out


def test_round_trip_restores_store_byte_for_byte(mount, tmp_path, store):
    mount.unlock()
    before = tree_digest(os.path.join(store, "web")), tree_digest(os.path.join(store, "db"))
    pems = [export(mount, tmp_path, ks) for ks in ("web", "db")]
    shutil.rmtree(os.path.join(store, "web"))
    shutil.rmtree(os.path.join(store, "db"))
    for pem in pems:
        assert copy_in(pem, os.path.join(mount.path, "import")) == (0, "")
    after = tree_digest(os.path.join(store, "web")), tree_digest(os.path.join(store, "db"))
    assert after == before
    assert 'import "web": restored' in mount.status()


@pytest.mark.parametrize("armor", [True, False])
def test_stock_age_opens_what_the_tests_seal(tmp_path, armor):
    """The crafted files of the bad-input tests are sealed by age_seal():
    stock age opens them, so keyfs meets what age -p would have made."""
    data = os.urandom(3 * 65536 + 100)  # chunks, and a short last one
    (tmp_path / "in").write_bytes(data)
    age_seal(tmp_path / "in", tmp_path / "in.age", PASSWORD, armor)
    assert age_decrypt(tmp_path / "in.age", tmp_path / "out", PASSWORD).returncode == 0
    assert (tmp_path / "out").read_bytes() == data
    assert age_decrypt(tmp_path / "in.age", tmp_path / "bad", "wrong").returncode != 0


@pytest.mark.parametrize("maker", ["gnutar", "bsdtar-pax", "bsdtar-ustar", "binary"])
def test_archives_made_outside_keyfs_import(mount, tmp_path, store, maker):
    mount.unlock()
    src = tmp_path / "src" / "newkeys"
    src.mkdir(parents=True)
    (src / "a.key").write_bytes(os.urandom(32))
    (src / "b.pem").write_text("not really a pem\n")
    raw = tmp_path / "k.tar"
    cmd = {
        "gnutar": ["tar", "-cf", str(raw), "-C", str(src.parent), "newkeys"],
        "bsdtar-pax": ["bsdtar", "--format", "pax", "-cf", str(raw), "-C", str(src.parent), "newkeys"],
        "bsdtar-ustar": ["bsdtar", "--format", "ustar", "-cf", str(raw), "-C", str(src.parent), "newkeys"],
        "binary": ["tar", "-cf", str(raw), "-C", str(src.parent), "newkeys"],
    }[maker]
    run(cmd)
    pem = tmp_path / "k.age"
    assert age_encrypt(raw, pem, PASSWORD, armor=maker != "binary").returncode == 0
    assert copy_in(pem, os.path.join(mount.path, "import")) == (0, "")
    for f in ("a.key", "b.pem"):
        assert open(os.path.join(store, "newkeys", f), "rb").read() == (src / f).read_bytes()
    assert "newkeys.pem" in os.listdir(mount.export)


def test_rsync_temp_rename_inplace_and_cp_a(mount, tmp_path, store):
    mount.unlock()
    pem = export(mount, tmp_path)
    shutil.rmtree(os.path.join(store, "web"))
    run(["rsync", str(pem), os.path.join(mount.path, "import") + "/"])
    assert os.path.isdir(os.path.join(store, "web"))
    assert "web.pem" in os.listdir(os.path.join(mount.path, "import"))
    shutil.rmtree(os.path.join(store, "web"))
    run(["rsync", "--inplace", str(pem), os.path.join(mount.path, "import", "again.pem")])
    assert os.path.isdir(os.path.join(store, "web"))
    shutil.rmtree(os.path.join(store, "web"))
    run(["cp", "-a", str(pem), os.path.join(mount.path, "import", "cpa.pem")])
    assert os.path.isdir(os.path.join(store, "web"))


def test_cat_and_tar_x_into_import(mount, tmp_path, store):
    mount.unlock()
    pem = export(mount, tmp_path)
    shutil.rmtree(os.path.join(store, "web"))
    with open(pem, "rb") as src:
        run(["sh", "-c", f"cat > {os.path.join(mount.path, 'import', 'x')}"], stdin=src)
    assert os.path.isdir(os.path.join(store, "web"))
    shutil.rmtree(os.path.join(store, "web"))
    run(["tar", "-cf", str(tmp_path / "carrier.tar"), "-C", str(tmp_path), "web.pem"])
    run(["tar", "-xf", str(tmp_path / "carrier.tar"), "-C", os.path.join(mount.path, "import")])
    assert os.path.isdir(os.path.join(store, "web"))
    os.unlink(os.path.join(mount.path, "import", "web.pem"))
    assert os.listdir(os.path.join(mount.path, "import")) == ["x"]


def _flip(data, at):
    b = bytearray(data)
    b[at] ^= 1
    return bytes(b)


@pytest.mark.parametrize("dirname", ["import", "verify"])
def test_bad_input_fails_at_close_and_changes_nothing(mount, tmp_path, store, dirname):
    mount.unlock()
    pem = export(mount, tmp_path)
    binary = tmp_path / "web.age"
    run(["sh", "-c", f"sed '1d;$d' {pem} | base64 -d > {binary}"])
    data = binary.read_bytes()
    cases = {
        "Bad message": [("flipped.age", _flip(data, len(data) - 40)),
                        ("cut.age", data[:-20]),
                        ("cut.pem", pem.read_bytes()[:len(pem.read_bytes()) // 2])],
        "Invalid argument": [("text.pem", b"hello, not an age file\n"),
                             ("badarmor.pem", b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!\n"
                                              b"-----END AGE ENCRYPTED FILE-----\n")],
    }
    link = tarfile.TarInfo("evil/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    crafted = {
        "dotdot": [("evil/", b""), ("evil/../x", b"boom")],
        "symlink": [link],
        "nested": [("evil/sub/k", b"x")],
        "absolute": [("/evil/k", b"x")],
    }
    for name, members in crafted.items():
        p = sealed_tar(tmp_path, members, name=name)
        cases["Invalid argument"].append((p.name, p.read_bytes()))
    before = tree_digest(store)
    for message, files in cases.items():
        for fname, content in files:
            src = tmp_path / ("in-" + fname)
            src.write_bytes(content)
            rc, err = copy_in(src, os.path.join(mount.path, dirname, fname))
            assert rc != 0 and message in err, (fname, err)
            assert tree_digest(store) == before, fname
    assert f"{dirname} failed" in mount.logtext()


def test_wrong_and_missing_password(mount, tmp_path, store):
    mount.unlock()
    pem = export(mount, tmp_path)
    before = tree_digest(store)
    assert mount.control("hint the red one") == 0
    assert mount.control("password Other-Horse-8") == 0
    rc, err = copy_in(pem, os.path.join(mount.path, "import", "w.pem"))
    assert rc != 0 and "Key was rejected by service" in err
    assert "password hint: the red one" in mount.logtext()
    assert mount.control("forget") == 0
    rc, err = copy_in(pem, os.path.join(mount.path, "import", "n.pem"))
    assert rc != 0 and "Required key not available" in err
    assert mount.control(f"unlock {PASSWORD}") == 0
    assert copy_in(pem, os.path.join(mount.path, "verify", "u.pem")) == (0, "")
    before.sort()
    after = tree_digest(store)
    after = [e for e in after if not e[0].startswith(".keyfs/meta")]
    assert after == [e for e in before if not e[0].startswith(".keyfs/meta")]


def test_work_factor_over_cap_is_rejected_before_work(mount, tmp_path, store):
    mount.unlock()
    pem = export(mount, tmp_path)
    binary = tmp_path / "web.age"
    run(["sh", "-c", f"sed '1d;$d' {pem} | base64 -d > {binary}"])
    data = binary.read_bytes().replace(b" 10\n", b" 23\n", 1)
    assert b" 23\n" in data
    src = tmp_path / "wf23.age"
    src.write_bytes(data)
    rc, err = copy_in(src, os.path.join(mount.path, "verify"))
    assert rc != 0 and "Key was rejected by service" in err


def test_verify_good_copy_restores_nothing(mount, tmp_path, store):
    mount.unlock()
    pem = export(mount, tmp_path)
    shutil.rmtree(os.path.join(store, "web"))
    before = tree_digest(store)
    assert copy_in(pem, os.path.join(mount.path, "verify")) == (0, "")
    assert tree_digest(store) == before
    assert 'verify "web": good copy' in mount.status()


def test_conflict_makes_inactive_version_then_activate_swaps(mount, tmp_path, store):
    mount.unlock()
    old = tree_digest(os.path.join(store, "web"))
    pem = export(mount, tmp_path)
    with open(os.path.join(store, "web", "ed25519.pub"), "a") as f:
        f.write("# rotated\n")
    new = tree_digest(os.path.join(store, "web"))
    assert copy_in(pem, os.path.join(mount.path, "import")) == (0, "")
    assert tree_digest(os.path.join(store, "web")) == new, "active keys must be untouched"
    assert "inactive versions: 1" in mount.status()
    # importing the same copy again stores nothing new
    assert copy_in(pem, os.path.join(mount.path, "import", "again.pem")) == (0, "")
    assert os.listdir(os.path.join(store, ".keyfs", "versions", "web")) == ["1"]
    assert mount.control("activate web 1") == 0
    assert tree_digest(os.path.join(store, "web")) == old
    kept = os.path.join(store, ".keyfs", "versions", "web", "2")
    assert tree_digest(kept) == new
    assert mount.control("activate web 9") == errno.ENOENT
    assert mount.control("activate ../x 1") == errno.EINVAL


def test_oversize_import_is_efbig(mount, tmp_path, store):
    mount.unlock()
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (33 << 20))  # past import.max_size, 32 MiB by default
    before = tree_digest(store)
    rc, err = copy_in(big, os.path.join(mount.path, "import"))
    assert rc != 0 and "File too large" in err
    # close(2) says the same, not what the cut bytes look like
    assert "failed to close" not in err or err.count("File too large") == 2, err
    assert tree_digest(store) == before
