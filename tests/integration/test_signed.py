"""Signed backups: every export carries KEYSET.sig, an SSH signature of its
KEYSET.ini by the store's own key, which stock ssh-keygen -Y verify checks
against the line keyfsctl signer prints; KEYSET.ini lists every member's
sha256 for sha256sum -c. A backup whose signature or members were tampered
with is refused and changes nothing."""
import errno
import io
import os
import re
import shutil
import tarfile

from conftest import (PASSWORD, age_decrypt, age_encrypt, age_identity, recipients_file, run,
                      tree_digest, wait_for)
from test_members import mounted_with


def signer(build, m):
    res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "signer"])
    line = res.stdout
    assert line.startswith("keyfs@") and ' namespaces="keyfs" ssh-ed25519 AAAA' in line, line
    return line


def opened(m, name, tmp_path, identity=None):
    """The export of name, opened with stock age and extracted with tar."""
    pem = tmp_path / f"{name}.pem"
    shutil.copyfile(os.path.join(m.export, f"{name}.pem"), pem)
    tar = tmp_path / f"{name}.tar"
    if identity:
        run(["age", "-d", "-i", identity, "-o", str(tar), str(pem)])
    else:
        assert age_decrypt(pem, tar, PASSWORD).returncode == 0
    out = tmp_path / f"{name}.out"
    out.mkdir()
    run(["tar", "-C", str(out), "-xpf", str(tar)])
    return pem, tar, out / name


def import_errno(m, pem, name):
    """cp's way into import/: the errno close() gave, or None."""
    try:
        shutil.copyfile(pem, os.path.join(m.path, "import", f"{name}.pem"))
        return None
    except OSError as e:
        return e.errno


def wg_keyset(tmp_path):
    """A live keyset's path holding a wireguard key, and an empty store."""
    live = tmp_path / "wg"
    live.mkdir()
    (live / "wg0.conf").write_text("PrivateKey = real\n")
    store = tmp_path / "store"
    store.mkdir()
    return live, store


def ssh_verify(allowed, principal, d):
    with open(d / "KEYSET.ini", "rb") as ini:
        return run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n",
                    "keyfs", "-s", str(d / "KEYSET.sig")], stdin=ini, check=False, text=False)


def test_every_export_verifies_with_stock_ssh_keygen(build, keyfs_bin, tmp_path):
    store = tmp_path / "store"
    run([os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "demo-store"),
         str(store)])
    live = tmp_path / "wg"
    live.mkdir()
    (live / "wg0.conf").write_text("[Interface]\nPrivateKey = x\n")
    rcp = recipients_file(tmp_path)
    conf = (f"[keyset wg]\npath = {live}\ninclude = *.conf\n"
            f"[keyset db]\nrecipients = {rcp}\n")
    for m in mounted_with(keyfs_bin, tmp_path, str(store), conf):
        m.unlock()
        line = signer(build, m)
        allowed = tmp_path / "allowed_signers"
        allowed.write_text(line)
        principal = line.split()[0]
        assert f"signer: {line.strip()}" in m.status()
        assert line.strip() in open(os.path.join(m.export, "README.txt")).read()
        seed = open(store / ".keyfs" / "signing.key", "rb").read()
        for name, identity in (("web", None), ("wg", None), ("db", str(tmp_path / "id.txt"))):
            pem, tar, d = opened(m, name, tmp_path, identity)
            res = ssh_verify(allowed, principal, d)
            assert res.returncode == 0 and b"Good" in res.stdout + res.stderr, res
            # every member is listed with its sha256, checkable by hand
            res = run(["sh", "-c", "grep -E '^[0-9a-f]{64}  ' KEYSET.ini | sha256sum -c"],
                      cwd=str(d))
            assert ": OK" in res.stdout and "FAILED" not in res.stdout, res.stdout
            assert seed not in open(tar, "rb").read()
        assert seed.hex() not in m.logtext()


def test_tampered_backups_are_refused(keyfs_bin, tmp_path, store):
    """A member changed after signing, or KEYSET.ini edited to match it,
    sealed to keyfs' identity as a forger can (its public key is no
    secret): the signature check fails and nothing is restored."""
    key, pub = age_identity(tmp_path)
    for m in mounted_with(keyfs_bin, tmp_path, store, f"[identity]\nfile = {key}\n"):
        m.unlock()
        pem, tar, d = opened(m, "web", tmp_path)
        before = tree_digest(store)
        for what in ("member", "ini"):
            work = tmp_path / what
            shutil.copytree(d.parent, work)
            (work / "web" / "ed25519.key").write_text("a key of the forger's\n")
            if what == "ini":
                ini = work / "web" / "KEYSET.ini"
                lines = [l for l in ini.read_text().splitlines(True)
                         if " ed25519.key\n" not in l]
                ini.write_text("".join(lines))
            forged = tmp_path / f"forged-{what}.tar"
            with tarfile.open(forged, "w", format=tarfile.PAX_FORMAT) as t:
                t.add(work / "web", "web")
            sealed = tmp_path / f"forged-{what}.pem"
            run(["age", "-a", "-r", pub, "-o", str(sealed), str(forged)])
            assert import_errno(m, sealed, "web") == errno.EBADMSG
            why = ("its members do not match its signed KEYSET.ini" if what == "member" else
                   "its KEYSET.sig does not verify")
            assert f'import "web" failed: forged or damaged: {why}' in m.logtext()
            assert tree_digest(store) == before
        metrics = open(os.path.join(m.path, ".metrics")).read()
        assert 'keyfs_imports_total{kind="import",outcome="forged"} 2' in metrics, metrics


def forged_backup(tmp_path, pub, name, files):
    """What a forger who read a recipient makes: a tar of files, sealed to
    it with stock age, unsigned."""
    stage = tmp_path / "forge" / name
    stage.mkdir(parents=True)
    for f, text in files.items():
        (stage / f).write_text(text)
    tar = tmp_path / f"{name}-forged.tar"
    run(["tar", "-C", str(stage.parent), "-cf", str(tar), name])
    pem = tmp_path / f"{name}-forged.pem"
    run(["age", "-a", "-r", pub, "-o", str(pem), str(tar)])
    return pem


def test_forged_backup_never_reaches_a_live_path_by_itself(build, keyfs_bin, tmp_path):
    """Made from the public key alone, written into import/ while the live
    path is empty (the disaster-recovery case): stored as an inactive
    version only; activate refuses it and names its fingerprint; only
    --unauthenticated installs it. With import.unauthenticated = refuse it
    is refused outright."""
    key, pub = age_identity(tmp_path)
    live = tmp_path / "wg"
    live.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    pem = forged_backup(tmp_path, pub, "wg", {"wg0.conf": "PrivateKey = forged\n"})
    ctl = os.path.join(build, "keyfsctl")
    conf = f"[identity]\nfile = {key}\n[keyset wg]\npath = {live}\ninclude = *.conf\n"
    for m in mounted_with(keyfs_bin, tmp_path, str(store), conf):
        shutil.copyfile(pem, os.path.join(m.path, "import", "wg.pem"))
        assert os.listdir(live) == []
        log = m.logtext()
        assert re.search(r'import "wg": .*stored as inactive version 1', log), log
        metrics = open(os.path.join(m.path, ".metrics")).read()
        assert 'keyfs_imports_total{kind="import",outcome="unauthenticated"} 1' in metrics
        assert "unsigned, unauthenticated: activate only with --unauthenticated" in log, log
        res = run([ctl, "-m", m.path, "activate", "wg", "1"], check=False)
        assert res.returncode != 0 and "unauthenticated backup (fingerprint " in res.stderr, res
        assert os.listdir(live) == []
        res = run([ctl, "-m", m.path, "activate", "--unauthenticated", "wg", "1"], check=False)
        assert res.returncode == 0, res
        assert (live / "wg0.conf").read_text() == "PrivateKey = forged\n"
        # a new keyset of keyfs' own store: the same rule
        other = forged_backup(tmp_path, pub, "newks", {"key": "forged\n"})
        assert import_errno(m, other, "newks") is None
        assert not (store / "newks").exists()
        res = run([ctl, "-m", m.path, "activate", "newks", "1"], check=False)
        assert res.returncode != 0 and "unauthenticated backup" in res.stderr, res
        res = run([ctl, "-m", m.path, "activate", "--unauthenticated", "newks", "1"],
                  check=False)
        assert res.returncode == 0 and (store / "newks" / "key").read_text() == "forged\n", res
        assert not (store / ".keyfs" / "versions" / "newks" / "1.unauthenticated").exists()

    os.unlink(live / "wg0.conf")
    shutil.rmtree(store)
    store.mkdir()
    for m in mounted_with(keyfs_bin, tmp_path, str(store),
                          conf + "[import]\nunauthenticated = refuse\n"):
        assert import_errno(m, pem, "wg") == errno.EKEYREJECTED
        assert 'import "wg" refused: unauthenticated' in m.logtext()
        assert os.listdir(live) == []


def test_signed_recipient_backup_restores_into_an_empty_path(build, keyfs_bin, tmp_path):
    """The same kind of seal, made by keyfs itself (signed with its key):
    restored at once into the empty live path."""
    rcp = recipients_file(tmp_path)
    live, store = wg_keyset(tmp_path)
    conf = (f"[seal]\nrecipients = {rcp}\n[identity]\nfile = {tmp_path / 'id.txt'}\n"
            f"[keyset wg]\npath = {live}\ninclude = *.conf\n")
    for m in mounted_with(keyfs_bin, tmp_path, str(store), conf):
        pem = tmp_path / "wg.pem"
        shutil.copyfile(os.path.join(m.export, "wg.pem"), pem)
        os.unlink(live / "wg0.conf")
        shutil.copyfile(pem, os.path.join(m.path, "import", "wg.pem"))
        assert (live / "wg0.conf").read_text() == "PrivateKey = real\n"
        assert "(this keyfs)" in m.logtext()


def test_backup_signed_by_an_administrator_restores(build, keyfs_bin, tmp_path):
    """An administrator signs a backup's KEYSET.ini with their own ssh key
    (ssh-keygen -Y sign -n keyfs) and seals it to keyfs' recipient: with
    that key in import.signers it is vouched for, restored at once into the
    empty live path, and its signer named; exports sealed to an ssh-ed25519
    recipient verify with stock ssh-keygen as well."""
    admin = str(tmp_path / "admin")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f", admin])
    allowed = tmp_path / "allowed_signers"
    allowed.write_text("admin@example.org namespaces=\"keyfs\" " +
                       open(admin + ".pub").read())
    rcp = tmp_path / "recipients.txt"
    rcp.write_text(open(admin + ".pub").read())
    live, store = wg_keyset(tmp_path)
    conf = (f"[seal]\nrecipients = {rcp}\n[identity]\nfile = {admin}\n"
            f"[import]\nsigners = {allowed}\n[keyset wg]\npath = {live}\ninclude = *.conf\n")
    for m in mounted_with(keyfs_bin, tmp_path, str(store), conf):
        pem, tar, d = opened(m, "wg", tmp_path, admin)
        line = signer(build, m)
        keyfs_allowed = tmp_path / "keyfs_allowed"
        keyfs_allowed.write_text(line)
        res = ssh_verify(keyfs_allowed, line.split()[0], d)
        assert res.returncode == 0 and b"Good" in res.stdout + res.stderr, res
        # the administrator's own signature in place of keyfs'
        run(["ssh-keygen", "-Y", "sign", "-q", "-f", admin, "-n", "keyfs", str(d / "KEYSET.ini")])
        resigned = tmp_path / "resigned.tar"
        with tarfile.open(tar) as src, tarfile.open(resigned, "w", format=tarfile.PAX_FORMAT) as t:
            for info in src.getmembers():
                data = src.extractfile(info) if info.isfile() else None
                if info.name == "wg/KEYSET.sig":
                    sig = open(str(d / "KEYSET.ini") + ".sig", "rb").read()
                    info.size = len(sig)
                    data = io.BytesIO(sig)
                t.addfile(info, data)
        sealed = tmp_path / "resigned.pem"
        run(["age", "-a", "-R", str(rcp), "-o", str(sealed), str(resigned)])
        os.unlink(live / "wg0.conf")
        assert import_errno(m, sealed, "wg") is None, m.logtext()
        assert (live / "wg0.conf").read_text() == "PrivateKey = real\n"
        assert re.search(r'import "wg": restored \(new keyset, active\).*signed by '
                         r'admin@example\.org', m.logtext()), m.logtext()
