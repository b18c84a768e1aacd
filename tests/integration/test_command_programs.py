"""Command keysets with the real programs that hold the keys: a LUKS2
header that only cryptsetup reaches, and a Kerberos KDC's database and
master key stash that only kdb5_util reaches. Each is backed up through
export/ (stock age opens it, tar holds the program's files), the keys are
destroyed, and the saved backup goes back in through import/ and
keyfsctl activate, which runs restore_command: the program holds its
keys again. A restore_command that outlives its timeout is killed, the
activation fails and nothing changed."""
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, run, wait_for
from test_command_keysets import files_of, open_backup
from test_members import mounted_with

# A LUKS2 header backup is 16 MiB: its sealed export is bigger than the
# default import limit.
IMPORT = "[import]\nmax_size = 33554432\nmax_total = 67108864\n"
SEAL = "[seal]\nwork_factor = 10\n"


@pytest.fixture
def short(tmp_path):
    """A directory of short name for the programs' files: a config line
    holds at most 199 characters (inih's line buffer), and a command
    naming two files below pytest's tmp_path would not fit."""
    d = tempfile.mkdtemp(prefix="kc-", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d)


def need(*programs, package):
    for p in programs:
        if not shutil.which(p):
            pytest.skip(f"{p} is not installed (apt-get install {package})")


def keyfsctl(build, m, *args):
    return run([os.path.join(build, "keyfsctl"), "-m", m.path, *args], check=False)


def script(path, text):
    """An executable /bin/sh script at path: what a command needing
    $KEYFS_DIR or a second step is, since keyfs runs no shell."""
    path.write_text("#!/bin/sh\nset -eu\n" + text)
    path.chmod(0o755)
    return str(path)


def save_export(m, name, dst):
    """Waits for export/NAME.pem (the first backup_command runs in the
    background) and copies it out as an administrator would."""
    pem = os.path.join(m.export, f"{name}.pem")
    assert wait_for(lambda: os.path.exists(pem), 20), m.status() + m.logtext()
    run(["cp", pem, str(dst)])
    return dst


def members_of(pem, tmp_path, name):
    """The backup opened with stock age: {member name: bytes} of the
    keyset's directory in its tar, KEYSET.ini and KEYSET.sig left out."""
    with open(pem, "rb") as f:
        members, _ = open_backup(f.read(), tmp_path, f"{name}-opened")
    return files_of(members, name)


def import_version(m, pem, name):
    """Copies pem into import/; the inactive version it became, as the
    status and the versions directory both tell."""
    run(["cp", str(pem), os.path.join(m.path, "import", f"{name}.pem")])
    status = m.status()
    found = re.findall(rf'import "{name}": .*inactive version (\d+)', status)
    assert found, status + m.logtext()
    version = found[-1]
    assert version in os.listdir(os.path.join(m.store, ".keyfs", "versions", name)), status
    return version


# ------------------------------------------------------------------ LUKS

def luks_image(d):
    """A 32 MiB LUKS2 image with a key file; pbkdf2 at 1000 iterations
    so that opening it is fast."""
    need("cryptsetup", package="cryptsetup-bin")
    img, key = d / "disk.img", d / "disk.key"
    run(["truncate", "-s", "32M", str(img)])
    key.write_bytes(os.urandom(64))
    run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "--key-file", str(key), str(img)])
    return str(img), str(key)


def opens(img, key):
    return run(["cryptsetup", "open", "--test-passphrase", "--key-file", key, img],
               check=False).returncode == 0


def wipe_header(img):
    run(["dd", "if=/dev/zero", f"of={img}", "bs=1M", "count=16", "conv=notrunc"])


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def alive(pid):
    """pid runs (a zombie does not count: it does nothing more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def luks_conf(img, restore=None, timeout=30):
    restore = restore or ("cryptsetup luksHeaderRestore --batch-mode "
                          f"{img} --header-backup-file header.img")
    return (f"{SEAL}{IMPORT}[keyset luks]\n"
            f"backup_command = cryptsetup luksHeaderBackup {img} --header-backup-file header.img\n"
            f"restore_command = {restore}\n"
            f"timeout = {timeout}\n")


def store_dir(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    return str(store)


def fail_refresh(build, m, name, says):
    """keyfsctl refresh fails, says why, and the keyset leaves export/."""
    res = keyfsctl(build, m, "refresh", name)
    assert res.returncode != 0, res
    assert f"refresh {name}" in res.stderr and says in res.stderr, res.stderr
    status = m.status()
    assert re.search(rf"^backup_command {name}: exited [1-9]\d* at .*{says}", status,
                     re.M), status
    assert not os.path.exists(os.path.join(m.export, f"{name}.pem")), status


def test_luks_header_backed_up_wiped_and_restored(build, keyfs_bin, tmp_path, short):
    img, key = luks_image(short)
    want = run(["cryptsetup", "luksUUID", img]).stdout.strip()
    for m in mounted_with(keyfs_bin, tmp_path, store_dir(tmp_path), luks_conf(img)):
        m.unlock()
        pem = save_export(m, "luks", tmp_path / "luks.pem")
        assert re.search(r"^backup_command luks: exited 0 at ", m.status(), re.M), m.status()
        members = members_of(pem, tmp_path, "luks")
        assert list(members) == ["header.img"], list(members)
        assert len(members["header.img"]) == 16 << 20
        with open(img, "rb") as f:
            assert members["header.img"] == f.read(16 << 20)

        # the disaster: the header is gone, and with it every key slot
        wipe_header(img)
        assert not opens(img, key)
        fail_refresh(build, m, "luks", "not a valid LUKS device")

        # the restore: the saved backup in (which runs no program), then activated
        before = digest(img)
        version = import_version(m, pem, "luks")
        assert digest(img) == before
        res = keyfsctl(build, m, "activate", "luks", version)
        assert res.returncode == 0, (res, m.logtext())
        assert opens(img, key), m.logtext()
        assert run(["cryptsetup", "luksUUID", img]).stdout.strip() == want
        assert not os.path.exists(os.path.join(m.store, ".keyfs", "versions", "luks", version))
        # backup_command ran again: export/ shows the header the disk has
        assert re.search(r"^backup_command luks: exited 0 at ", m.status(), re.M), m.status()
        again = save_export(m, "luks", tmp_path / "again.pem")
        assert members_of(again, tmp_path, "luks") == members
        assert f'activate "luks": version {version} is active' in m.status(), m.status()


def test_luks_restore_past_its_timeout_is_killed_and_changes_nothing(build, keyfs_bin,
                                                                     tmp_path, short):
    img, key = luks_image(short)
    pids = tmp_path / "restore.pids"
    reached = tmp_path / "restore-reached"
    # slow: the restore would come only after the timeout
    slow = script(short / "slow-restore",
                  f"echo $$ > {pids}\nsleep 20 &\necho $! >> {pids}\nwait\n"
                  f"touch {reached}\n"
                  f"exec cryptsetup luksHeaderRestore --batch-mode {img} "
                  "--header-backup-file header.img\n")
    conf = luks_conf(img, restore=slow, timeout=1)
    for m in mounted_with(keyfs_bin, tmp_path, store_dir(tmp_path), conf):
        m.unlock()
        pem = save_export(m, "luks", tmp_path / "luks.pem")
        wipe_header(img)
        fail_refresh(build, m, "luks", "not a valid LUKS device")
        version = import_version(m, pem, "luks")
        before = digest(img)

        res = keyfsctl(build, m, "activate", "luks", version)
        assert res.returncode != 0, res
        assert re.search(rf'activate "luks" version {version} failed: restore_command killed '
                         r"after the timeout.*; it stays an inactive version", res.stderr), res
        log = m.logtext()
        assert re.search(rf"keyset luks: version {version} not restored: restore_command "
                         r"killed after the timeout", log), log
        # the script and the sleep it started were killed with it: nothing
        # of the restore runs on to change the disk later
        started = [int(p) for p in pids.read_text().split()]
        assert len(started) == 2, started
        assert wait_for(lambda: not any(alive(p) for p in started), 5), started
        assert not reached.exists()
        assert digest(img) == before
        assert not opens(img, key)
        # the version stays, for an activation that can succeed
        assert version in os.listdir(os.path.join(m.store, ".keyfs", "versions", "luks"))
        status = m.status()
        assert re.search(r"^  luks +NOT EXPORTED: backup_command exited 1 at .*not a valid LUKS",
                         status, re.M), status
        assert not os.path.exists(os.path.join(m.export, "luks.pem"))


# ------------------------------------------------------------- Kerberos

REALM = "TEST.REALM"


def kdc_realm(short):
    """A KDC realm in its own directory below short: (the directory, the
    environment its tools need)."""
    need("kdb5_util", "kadmin.local", package="krb5-kdc krb5-admin-server")
    d = short / "kdc"
    d.mkdir()
    (d / "krb5.conf").write_text(
        f"[libdefaults]\n default_realm = {REALM}\n"
        f"[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:1\n  admin_server = 127.0.0.1:1\n }}\n")
    (d / "kdc.conf").write_text(
        f"[realms]\n {REALM} = {{\n"
        f"  database_name = {d}/principal\n"
        f"  key_stash_file = {d}/stash\n"
        f"  acl_file = {d}/kadm5.acl\n"
        f"  admin_keytab = {d}/kadm5.keytab\n }}\n")
    (d / "kadm5.acl").write_text("")
    env = {"KRB5_CONFIG": str(d / "krb5.conf"), "KRB5_KDC_PROFILE": str(d / "kdc.conf")}
    return d, env


def krb(env, *args, check=True):
    return run(list(args), check=check, env={"PATH": os.environ["PATH"], **env})


def ktadd(env, keytab):
    """alice's keys, unchanged, into keytab (which needs the master key to
    decrypt them): the lines that say which went in."""
    res = krb(env, "kadmin.local", "-r", REALM, "-q", f"ktadd -k {keytab} -norandkey alice")
    added = sorted(line for line in (res.stdout + res.stderr).splitlines()
                   if "Entry for principal alice" in line)
    assert added, res
    return added


def test_kdc_database_and_stash_restored_onto_a_rebuilt_kdc(build, keyfs_bin, tmp_path,
                                                          short):
    d, env = kdc_realm(short)
    krb(env, "kdb5_util", "-r", REALM, "create", "-s", "-P", "masterpw")
    krb(env, "kadmin.local", "-r", REALM, "-q", "addprinc -pw pw1 alice")
    assert "Principal: alice@TEST.REALM" in krb(env, "kadmin.local", "-r", REALM,
                                                   "-q", "getprinc alice").stdout
    keytab = d / "alice.keytab"
    # her keys as the master key decrypts them (kvno, enctypes)
    keys = ktadd(env, keytab)
    stash = d / "stash"
    stash_bytes = stash.read_bytes()
    # the master key is a key too: without the stash the dump is useless.
    # The scripts keyfs ships for this (conf/command-keysets.ini).
    programs = os.path.join(ROOT, "conf", "programs")
    conf = (f"{SEAL}[keyset kdc]\nbackup_command = {programs}/kdc-backup\n"
            f"restore_command = {programs}/kdc-restore\ntimeout = 30\n"
            f"env = KRB5_CONFIG={env['KRB5_CONFIG']} KRB5_KDC_PROFILE={env['KRB5_KDC_PROFILE']} "
            f"KRB5_REALM={REALM} KRB5_STASH={stash}\n")
    for m in mounted_with(keyfs_bin, tmp_path, store_dir(tmp_path), conf):
        m.unlock()
        pem = save_export(m, "kdc", tmp_path / "kdc.pem")
        members = members_of(pem, tmp_path, "kdc")
        assert sorted(members) == ["kdc.dump", "stash"], sorted(members)
        assert members["stash"] == stash_bytes
        assert members["kdc.dump"].startswith(b"kdb5_util load_dump version"), \
            members["kdc.dump"][:80]
        assert b"alice@TEST.REALM" in members["kdc.dump"]

        # the disaster: database and master key gone
        krb(env, "kdb5_util", "-r", REALM, "destroy", "-f")
        stash.unlink()
        res = krb(env, "kadmin.local", "-r", REALM, "-q", "getprinc alice", check=False)
        assert "Principal: alice@" not in res.stdout, res
        fail_refresh(build, m, "kdc", "while initializing database")

        version = import_version(m, pem, "kdc")
        assert not stash.exists()  # import ran no program
        res = keyfsctl(build, m, "activate", "kdc", version)
        assert res.returncode == 0, (res, m.logtext())
        assert stash.read_bytes() == stash_bytes
        assert oct(stash.stat().st_mode & 0o777) == "0o600"
        res = krb(env, "kadmin.local", "-r", REALM, "-q", "getprinc alice")
        assert "Principal: alice@TEST.REALM" in res.stdout, res
        # alice's keys decrypt with the restored master key
        keytab.unlink()
        assert ktadd(env, keytab) == keys
        # backup_command ran again and export/ is back
        save_export(m, "kdc", tmp_path / "again.pem")
        assert re.search(r"^backup_command kdc: exited 0 at ", m.status(), re.M), m.status()
