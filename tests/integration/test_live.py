"""Live keysets: key files backed up where services read them (host keys
as ssh-keygen -A makes them, a certbot tree, a WireGuard config, a LUKS2
header backup) and restored in place: by import when they are absent, by
activate when they differ, with on_activate run after. Hostile archives
change nothing; store keysets with odd names go out and come back."""
import errno
import io
import os
import re
import shutil
import tarfile

import pytest

from conftest import PASSWORD, Mount, age_decrypt, age_seal, run
from test_members import describe, luks_header, mounted_with, socket_reported, untar

CONF = "[import]\nmax_size = 33554432\nmax_total = 67108864\nmax_work_factor = 18\n"


def make_root(tmp, root):
    """/etc/ssh, /etc/letsencrypt, /etc/wireguard and a LUKS header backup."""
    ssh = os.path.join(root, "etc", "ssh")
    os.makedirs(ssh)
    run(["ssh-keygen", "-A", "-f", root])
    with open(os.path.join(ssh, "sshd_config"), "w") as f:
        f.write("# not a key\n")
    le = os.path.join(root, "etc", "letsencrypt")
    os.makedirs(os.path.join(le, "archive", "example.org"))
    os.makedirs(os.path.join(le, "live", "example.org"))
    os.makedirs(os.path.join(le, "renewal"))
    for i in (1, 2):
        for n in ("cert", "chain", "fullchain", "privkey"):
            p = os.path.join(le, "archive", "example.org", f"{n}{i}.pem")
            with open(p, "w") as f:
                f.write(f"-----BEGIN {n} {i}-----\n")
            os.chmod(p, 0o600 if n == "privkey" else 0o644)
    for n in ("cert", "chain", "fullchain", "privkey"):
        os.symlink(f"../../archive/example.org/{n}2.pem",
                   os.path.join(le, "live", "example.org", f"{n}.pem"))
    with open(os.path.join(le, "renewal", "example.org.conf"), "w") as f:
        f.write("archive_dir = /etc/letsencrypt/archive/example.org\n")
    os.chown(os.path.join(le, "renewal", "example.org.conf"), 1234, 5678)
    os.chmod(os.path.join(le, "archive"), 0o700)
    wg = os.path.join(root, "etc", "wireguard")
    os.makedirs(wg)
    with open(os.path.join(wg, "wg0.conf"), "w") as f:
        f.write("[Interface]\nPrivateKey = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8hIQ==\n")
    os.chmod(os.path.join(wg, "wg0.conf"), 0o600)
    run(["setfattr", "-n", "user.purpose", "-v", "vpn", os.path.join(wg, "wg0.conf")])
    luks = os.path.join(root, "luks")
    os.makedirs(luks)
    luks_header(tmp, os.path.join(luks, "header.img"))


def live_conf(root, hook):
    return CONF + f"""
[keyset ssh]
path = {root}/etc/ssh
include = ssh_host_*_key ssh_host_*_key.pub
on_activate = {hook} ssh

[keyset tls]
path = {root}/etc/letsencrypt
include = live/example.org/** archive/example.org/** renewal/example.org.conf

[keyset wg]
path = {root}/etc/wireguard
include = *.conf
exclude = old*.conf

[keyset luks]
path = {root}/luks
include = *.img
"""


@pytest.fixture
def live(keyfs_bin, tmp_path):
    store = str(tmp_path / "store")
    os.makedirs(store)
    root = str(tmp_path / "root")
    make_root(str(tmp_path), root)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"activated $1\" >> {tmp_path}/hook.log\necho hook-output\n")
    hook.chmod(0o755)
    yield from mounted_with(keyfs_bin, tmp_path, store, live_conf(root, hook), root=root)


PATHS = {"ssh": "etc/ssh", "tls": "etc/letsencrypt", "wg": "etc/wireguard", "luks": "luks"}


def members(m, name):
    """describe() of what the keyset holds (sshd_config is not a member)."""
    path = os.path.join(m.root, PATHS[name])
    listing, sums, xattrs = describe(path)
    if name == "ssh":
        listing = [x for x in listing if not x.startswith("sshd_config ")]
        sums.pop("sshd_config")
    return listing, sums, xattrs


def fetch(m, tmp_path, name):
    pem = tmp_path / f"{name}.pem"
    with open(os.path.join(m.export, f"{name}.pem"), "rb") as f:
        pem.write_bytes(f.read())
    return pem


def remove_members(m, name):
    listing = members(m, name)[0]
    base = os.path.join(m.root, PATHS[name])
    for line in sorted(listing, reverse=True):
        p = os.path.join(base, line.split(" ")[0])
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        else:
            os.unlink(p)


@pytest.mark.parametrize("name", ["ssh", "tls", "wg", "luks"])
def test_round_trip_through_age_tar_and_import(live, tmp_path, name):
    m = live
    want = members(m, name)
    m.unlock()
    pem = fetch(m, tmp_path, name)
    assert fetch(m, tmp_path, name).read_bytes() == pem.read_bytes()
    res = age_decrypt(pem, tmp_path / "x.tar", PASSWORD)
    assert res.returncode == 0, res.stdout
    out = str(tmp_path / "out")
    untar(str(tmp_path / "x.tar"), out)
    os.unlink(os.path.join(out, name, "KEYSET.ini"))
    os.unlink(os.path.join(out, name, "KEYSET.sig"))
    assert describe(os.path.join(out, name)) == want

    # All absent: the import restores them in place at once.
    remove_members(m, name)
    shutil.copyfile(pem, os.path.join(m.path, "import", f"{name}.pem"))
    assert members(m, name) == want
    assert "restored" in m.logtext()
    leftovers = run(["find", m.root, "-name", "*.keyfs-new"]).stdout
    assert leftovers == ""


def test_nodump_readonly_file_round_trips(live, tmp_path):
    m = live
    p = os.path.join(m.root, "etc", "wireguard", "wg1.conf")
    with open(p, "w") as f:
        f.write("[Interface]\n")
    os.chmod(p, 0o400)
    if run(["chattr", "+d", p], check=False).returncode != 0:
        pytest.skip("this filesystem refuses chattr +d")
    want = members(m, "wg")
    m.unlock()
    pem = fetch(m, tmp_path, "wg")
    run(["chattr", "-d", p])
    remove_members(m, "wg")
    shutil.copyfile(pem, os.path.join(m.path, "import", "wg.pem"))
    assert members(m, "wg") == want


def test_modified_host_key_arrives_inactive_and_activate_installs_it(live, tmp_path):
    m = live
    key = os.path.join(m.root, "etc", "ssh", "ssh_host_ed25519_key")
    m.unlock()
    old = members(m, "ssh")
    pem = fetch(m, tmp_path, "ssh")
    with open(key, "r+") as f:
        f.write("#")  # a new host key, as far as keyfs can tell
    new = members(m, "ssh")
    assert new != old
    shutil.copyfile(pem, os.path.join(m.path, "import", "ssh.pem"))
    assert members(m, "ssh") == new, "an import never replaces live keys"
    assert "inactive version 1" in m.logtext()
    assert not os.path.exists(tmp_path / "hook.log")

    assert m.control("activate ssh 1") == 0
    assert members(m, "ssh") == old
    assert (tmp_path / "hook.log").read_text() == "activated ssh\n"
    log = m.logtext()
    assert "replaced keys are kept as version 2" in log, log
    assert "on_activate exited 0" in log and "hook-output" in log, log
    status = m.status()
    assert re.search(r"^on_activate ssh: exited 0 at \S+Z: .*hook-output", status, re.M), status
    # The replaced key is kept: activating it brings it back.
    assert m.control("activate ssh 2") == 0
    assert members(m, "ssh") == new
    assert run(["find", m.root, "-name", "*.keyfs-new"]).stdout == ""


def hostile(tmp_path, name, bad):
    good = tarfile.TarInfo("ssh/ssh_host_ed25519_key")
    good.size, good.mode = 4, 0o600
    raw = tmp_path / f"{name}.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(good, io.BytesIO(b"key\n"))
        if bad.isreg():
            t.addfile(bad, io.BytesIO(b"x" * bad.size))
        else:
            t.addfile(bad)
    out = tmp_path / f"{name}.pem"
    age_seal(raw, out, PASSWORD)
    return out


def info(name, kind=tarfile.REGTYPE, link=""):
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mode = kind, link, 0o600
    t.size = 1 if kind == tarfile.REGTYPE else 0
    return t


@pytest.mark.parametrize("bad", [
    info("ssh/../ssh_host_rsa_key"),
    info("/etc/ssh/ssh_host_rsa_key"),
    info("ssh/ssh_host_rsa_key", tarfile.SYMTYPE, "../../../etc/passwd"),
    info("ssh/authorized_keys"),
    info("ssh/ssh_host_dev_key", tarfile.CHRTYPE),
], ids=["dotdot", "absolute", "symlink-out", "not-matching", "device"])
def test_hostile_archives_change_nothing(live, tmp_path, bad):
    m = live
    m.unlock()
    remove_members(m, "ssh")
    before = describe(m.root)
    pem = hostile(tmp_path, "bad", bad)
    with pytest.raises(OSError) as e:
        with open(os.path.join(m.path, "import", "bad.pem"), "wb") as f:
            f.write(pem.read_bytes())
    assert e.value.errno == errno.EINVAL
    assert describe(m.root) == before


def test_live_keyset_with_a_socket_is_reported_and_rsync_succeeds(live, tmp_path):
    sock = os.path.join(live.root, "etc", "wireguard", "agent.conf")
    socket_reported(live, tmp_path, sock, "wg", "ssh")


def test_name_clash_with_the_store_is_a_config_error(keyfs_bin, tmp_path):
    store = tmp_path / "store"
    (store / "ssh").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[keyset ssh]\npath = {tmp_path}/etc\ninclude = *\n")
    (tmp_path / "mnt").mkdir()
    res = run([keyfs_bin, "-f", "-c", str(conf), "-o", f"store={store}", str(tmp_path / "mnt")],
              check=False, timeout=20)
    assert res.returncode != 0
    assert "store holds a keyset of that name" in res.stderr


def test_store_keysets_with_odd_names_round_trip(keyfs_bin, tmp_path):
    store = tmp_path / "store"
    for name in ("odd name", "\u00e9"):
        (store / name).mkdir(parents=True)
        (store / name / "key").write_text(f"{name} key\n")
        (store / name / "key").chmod(0o600)
    m = Mount(keyfs_bin, str(tmp_path), str(store))
    m.start()
    try:
        m.unlock()
        names = sorted(os.listdir(m.export))
        assert "odd%20name.pem" in names and "%C3%A9.pem" in names, names
        for raw, esc in (("odd name", "odd%20name"), ("\u00e9", "%C3%A9")):
            pem = fetch(m, tmp_path, esc)
            assert age_decrypt(pem, tmp_path / "x.tar", PASSWORD).returncode == 0
            out = tmp_path / f"out-{esc}"
            untar(str(tmp_path / "x.tar"), str(out))
            assert (out / esc / "key").read_text() == f"{raw} key\n"
            shutil.rmtree(store / raw)
            shutil.copyfile(pem, os.path.join(m.path, "import", f"{esc}.pem"))
            assert (store / raw / "key").read_text() == f"{raw} key\n"
        m.stop()
    finally:
        m.kill()
