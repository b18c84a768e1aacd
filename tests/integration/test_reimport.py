"""A re-imported backup keeps its bytes: keys restored from a backup of
their export (the same content, sealed under the same key) are served
with the very bytes the backup holds, so backup tools see no change and
the status says backed up. Only bytes keyfs sealed itself come back: a
file sealed by hand over the same tar, with the password or to the
recipients, is never served; a damaged kept seal, or another key, means
a fresh seal."""
import hashlib
import os
import re
import shutil

import pytest

from conftest import PASSWORD, Mount, age_decrypt, age_seal, run, wait_for
from test_members import mounted_with

# stock age -p seals at work factor 18: the forgeries must open
CONF = "[import]\nmax_work_factor = 18\n"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def status_line(m, ks):
    for line in m.status().splitlines():
        if re.match(rf"^  {ks} ", line):
            return line
    raise AssertionError(m.status())


def backed_up(m, ks):
    line = status_line(m, ks)
    return "; backed up " in line and "changed since last backup" not in line


def export_path(m, ks):
    return os.path.join(m.export, f"{ks}.pem")


def backup(m, ks, dest):
    """rsync -a of the export, as a backup job does: a read to the end."""
    os.makedirs(dest, exist_ok=True)
    run(["rsync", "-a", export_path(m, ks), str(dest) + "/"])
    return os.path.join(dest, f"{ks}.pem")


def unchanged_for_rsync(m, ks, dest):
    """rsync's quick check (size and time) finds nothing to send."""
    res = run(["rsync", "-ai", "--dry-run", export_path(m, ks), str(dest) + "/"])
    return res.stdout.strip() == ""


def head(m, ks, n=400):
    """The first bytes of the export: not a read to the end, no backup."""
    with open(export_path(m, ks), "rb") as f:
        return f.read(n)


def read_all(m, ks):
    with open(export_path(m, ks), "rb") as f:
        return f.read()


def import_file(m, src):
    res = run(["cp", str(src), os.path.join(m.path, "import", "restore.pem")], check=False)
    assert res.returncode == 0, res.stderr
    os.unlink(os.path.join(m.path, "import", "restore.pem"))


def activate_imported(m, ks):
    """activate the version the last import stored as inactive."""
    found = re.findall(rf'import "{ks}": differs .*inactive version (\d+)', m.status())
    assert found, m.status()
    assert m.control(f"activate {ks} {found[0]}") == 0, m.logtext()


def damage(path):
    with open(path, "ab") as f:
        f.write(b"# damaged\n")


def changed_and_resealed(m, ks, s1):
    """After the keys changed behind keyfs' back (the store watcher tells
    it): a new seal, not backed up."""
    assert wait_for(lambda: head(m, ks) != s1[:400], 10), "the change was never seen"
    assert "changed since last backup" in status_line(m, ks)


@pytest.fixture
def dirstore(keyfs_bin, tmp_path, store):
    yield from mounted_with(keyfs_bin, tmp_path, store, CONF)


def test_dir_store_reimport_activated_serves_the_backup_bytes(dirstore, tmp_path, store):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "web", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    st1 = os.stat(export_path(m, "web"))
    assert backed_up(m, "web")

    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    assert not unchanged_for_rsync(m, "web", tmp_path / "bak")

    import_file(m, s1_path)
    activate_imported(m, "web")
    assert backed_up(m, "web"), status_line(m, "web")
    st = os.stat(export_path(m, "web"))
    assert (st.st_size, st.st_mtime, st.st_ino) == (st1.st_size, st1.st_mtime, st1.st_ino)
    assert unchanged_for_rsync(m, "web", tmp_path / "bak")
    assert sha(read_all(m, "web")) == sha(s1)
    assert "its bytes are served again" in m.logtext()

    # and across a restart
    m.stop()
    m.start("-c", m.conf)
    m.unlock()
    assert sha(read_all(m, "web")) == sha(s1)
    assert backed_up(m, "web")


def test_dir_store_keyset_lost_and_imported_directly(dirstore, tmp_path, store):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "db", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    damage(os.path.join(store, "db", "master.key"))
    changed_and_resealed(m, "db", s1)
    shutil.rmtree(os.path.join(store, "db"))
    import_file(m, s1_path)
    assert 'import "db": restored (new keyset, active)' in m.status()
    assert backed_up(m, "db"), status_line(m, "db")
    assert sha(read_all(m, "db")) == sha(s1)


def test_restart_between_the_damage_and_the_restore(dirstore, tmp_path, store):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "web", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    m.stop()
    m.start("-c", m.conf)
    m.unlock()
    import_file(m, s1_path)
    activate_imported(m, "web")
    assert sha(read_all(m, "web")) == sha(s1)
    assert backed_up(m, "web")


def test_only_a_seal_a_backup_read_is_kept(dirstore, tmp_path, store):
    """A seal no backup read is in no backup: nothing to keep of it."""
    m = dirstore
    m.unlock()
    s1 = read_all(m, "web")  # a read to the end: the backup
    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    kept = os.path.join(store, ".keyfs", "cache", ".kept")
    assert os.listdir(kept) == ["web@1"]
    s2_head = head(m, "web")
    with open(os.path.join(store, "web", "ed25519.pub"), "a") as f:
        f.write("# another change\n")
    assert wait_for(lambda: head(m, "web") != s2_head, 10)
    assert sorted(os.listdir(kept)) == ["web@1"], "S2 was never read to the end"


def forge_with_password(tmp_path, s1_path):
    """The backup's very tar, sealed again by hand with the password."""
    tar = tmp_path / "forge.tar"
    assert age_decrypt(s1_path, tar, PASSWORD).returncode == 0
    out = tmp_path / "forged.pem"
    age_seal(tar, out, PASSWORD)
    return out


def test_hand_sealed_copy_of_the_same_content_is_not_served(dirstore, tmp_path, store):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "web", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    forged = forge_with_password(tmp_path, s1_path)
    import_file(m, forged)
    activate_imported(m, "web")
    served = read_all(m, "web")
    assert sha(served) == sha(s1), "the content is the backup's: keyfs' own seal of it"
    assert sha(served) != sha(open(forged, "rb").read())


def test_hand_sealed_copy_without_a_kept_seal_gets_a_fresh_seal(dirstore, tmp_path, store):
    """No seal of this content was backed up here (a new keyfs state): the
    forgery's content comes back, its bytes do not."""
    m = dirstore
    m.unlock()
    s1_path = tmp_path / "s1.pem"
    s1_path.write_bytes(read_all(m, "web"))
    m.stop()
    shutil.rmtree(os.path.join(store, ".keyfs", "cache"))
    shutil.rmtree(os.path.join(store, ".keyfs", "fresh"))
    os.unlink(os.path.join(store, ".keyfs", "fresh.log"))
    damage(os.path.join(store, "web", "ed25519.key"))
    m.start("-c", m.conf)
    m.unlock()
    forged = forge_with_password(tmp_path, s1_path)
    import_file(m, forged)
    activate_imported(m, "web")
    served = read_all(m, "web")
    assert sha(served) not in (sha(open(forged, "rb").read()), sha(s1_path.read_bytes()))
    assert age_decrypt(export_path(m, "web"), tmp_path / "served.tar", PASSWORD).returncode == 0
    assert age_decrypt(forged, tmp_path / "forged.tar", PASSWORD).returncode == 0
    names = run(["tar", "-tf", str(tmp_path / "served.tar")]).stdout
    assert names == run(["tar", "-tf", str(tmp_path / "forged.tar")]).stdout


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_damaged_kept_seal_is_sealed_anew(dirstore, tmp_path, store, how):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "web", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    m.stop()
    kept = os.path.join(store, ".keyfs", "cache", ".kept", "web@1")
    data = bytearray(open(kept, "rb").read())
    if how == "flipped":
        data[-100] ^= 0x01  # within the armored bytes; the size stays
    else:
        data = data[:-100]
    open(kept, "wb").write(bytes(data))
    m.start("-c", m.conf)
    m.unlock()
    import_file(m, s1_path)
    activate_imported(m, "web")
    assert "changed since last backup" in status_line(m, "web")
    served = read_all(m, "web")
    assert sha(served) != sha(s1) and sha(served) != sha(bytes(data))
    assert age_decrypt(export_path(m, "web"), tmp_path / "x.tar", PASSWORD).returncode == 0
    assert "kept seal \"web@1\" is damaged: removed" in m.logtext()
    assert not os.path.exists(kept)


def test_another_sealing_key_means_a_fresh_seal(dirstore, tmp_path, store):
    m = dirstore
    m.unlock()
    s1_path = backup(m, "web", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    damage(os.path.join(store, "web", "ed25519.key"))
    changed_and_resealed(m, "web", s1)
    kept = os.path.join(store, ".keyfs", "cache", ".kept")
    assert os.listdir(kept) == ["web@1"]
    # the same password at another work factor is another key
    m.stop()
    m.start("-c", m.conf, opts="work_factor=11")
    m.unlock()
    head(m, "web")
    assert os.listdir(kept) == [], "a retired key's seal is not kept"
    import_file(m, s1_path)
    activate_imported(m, "web")
    assert "changed since last backup" in status_line(m, "web")
    assert sha(read_all(m, "web")) != sha(s1)


# ---- live keysets: an import that differs waits for activate ----

@pytest.fixture
def live(keyfs_bin, tmp_path):
    store = str(tmp_path / "store")
    os.makedirs(store)
    app = tmp_path / "root" / "app"
    app.mkdir(parents=True)
    for n in ("server.key", "client.key"):
        (app / n).write_bytes(os.urandom(48))
        os.chmod(app / n, 0o600)
    yield from mounted_with(keyfs_bin, tmp_path, store,
                            CONF + f"\n[keyset app]\npath = {app}\ninclude = *.key\n",
                            app=str(app))


def test_live_keyset_reimport_and_activate_serves_the_backup_bytes(live, tmp_path):
    m = live
    m.unlock()
    s1_path = backup(m, "app", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    want = open(os.path.join(m.app, "server.key"), "rb").read()
    assert backed_up(m, "app")

    with open(os.path.join(m.app, "server.key"), "r+b") as f:
        f.write(b"corrupted")
    changed_and_resealed(m, "app", s1)

    import_file(m, s1_path)
    assert open(os.path.join(m.app, "server.key"), "rb").read() != want, \
        "an import never replaces live keys"
    assert "changed since last backup" in status_line(m, "app")
    activate_imported(m, "app")
    assert open(os.path.join(m.app, "server.key"), "rb").read() == want
    assert backed_up(m, "app"), status_line(m, "app")
    assert unchanged_for_rsync(m, "app", tmp_path / "bak")
    assert sha(read_all(m, "app")) == sha(s1)


def test_live_keyset_hand_sealed_copy_is_not_served(live, tmp_path):
    m = live
    m.unlock()
    s1_path = backup(m, "app", tmp_path / "bak")
    s1 = open(s1_path, "rb").read()
    with open(os.path.join(m.app, "client.key"), "r+b") as f:
        f.write(b"corrupted")
    changed_and_resealed(m, "app", s1)
    forged = forge_with_password(tmp_path, s1_path)
    import_file(m, forged)
    activate_imported(m, "app")
    served = read_all(m, "app")
    assert sha(served) == sha(s1) and sha(served) != sha(open(forged, "rb").read())


# ---- sealed to recipients: anyone with the public key can seal ----

def test_recipient_sealed_forgery_is_not_served(keyfs_bin, tmp_path, store):
    ident = tmp_path / "id.txt"
    run(["age-keygen", "-o", str(ident)])
    os.chmod(ident, 0o600)
    pub = run(["age-keygen", "-y", str(ident)]).stdout.strip()
    rcpt = tmp_path / "recipients.txt"
    rcpt.write_text(pub + "\n")
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start(opts=f"work_factor=10,recipients={rcpt},identity_file={ident}")
        s1_path = backup(m, "db", tmp_path / "bak")
        s1 = open(s1_path, "rb").read()
        damage(os.path.join(store, "db", "master.key"))
        changed_and_resealed(m, "db", s1)
        tar = tmp_path / "db.tar"
        run(["age", "-d", "-i", str(ident), "-o", str(tar), s1_path])
        forged = tmp_path / "forged.pem"
        run(["age", "-a", "-r", pub, "-o", str(forged), str(tar)])
        import_file(m, forged)
        activate_imported(m, "db")
        served = read_all(m, "db")
        assert sha(served) == sha(s1), "keyfs' own seal of that content, kept"
        assert sha(served) != sha(forged.read_bytes())
        assert backed_up(m, "db")

        # another recipients set is another key: sealed anew, nothing kept
        ident2 = tmp_path / "id2.txt"
        run(["age-keygen", "-o", str(ident2)])
        rcpt.write_text(run(["age-keygen", "-y", str(ident2)]).stdout)
        m.stop()
        m.start(opts=f"work_factor=10,recipients={rcpt},identity_file={ident}")
        assert sha(read_all(m, "db")) != sha(s1)
        m.stop()
    finally:
        m.kill()
