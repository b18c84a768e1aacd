"""keyfsctl discover with the real programs that make keys: a fake root
holding each shape of the preset catalog (OpenSSH host keys from
ssh-keygen -A, a certbot tree, acme.sh, WireGuard, an OpenVPN PKI, BIND,
a Tor onion service, a keytab, a GnuPG home, Kubernetes PKI, systemd's
credential key, a LUKS2 volume through the test hook) is found exactly;
the sections --print-config prints mount and export every location,
which stock age opens; then everything is covered, check --discover is
OK, and a key that appears later in a place no keyset covers makes it
WARNING. Presets in keyfs.ini: a [keyset] with preset = openssh takes
its include from the catalog, and an unknown preset stops keyfs with
file:line."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT, run
from test_command_keysets import files_of, keyfsctl, mounted, open_backup, read_pem, \
    wait_export

CATALOG = os.path.join(ROOT, "conf", "presets")


def need(*programs):
    for p in programs:
        if not shutil.which(p):
            pytest.skip(f"{p} is not installed")


def write(path, data, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def genkey(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", path])


def cert(key, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    run(["openssl", "req", "-new", "-x509", "-key", key, "-subj", "/CN=test", "-days", "2",
         "-out", path])


def luks_image(tmp, name):
    img, key = os.path.join(tmp, name), os.path.join(tmp, name + ".key")
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    write(key, "not-a-real-key")
    run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "--key-file", key, img])
    return img


def make_root(tmp):
    """Every shape of the catalog below tmp/root; returns the root and
    {preset: (path, key files)} of what discover must find."""
    need("ssh-keygen", "wg", "openssl", "gpg", "cryptsetup")
    r = os.path.join(tmp, "root")
    p = lambda *parts: os.path.join(r, *parts)  # noqa: E731
    os.makedirs(p("etc", "ssh"))
    run(["ssh-keygen", "-A", "-f", r])
    nssh = len([n for n in os.listdir(p("etc", "ssh")) if n.endswith("_key")])
    # certbot: live/ links into archive/, an account key
    arch = p("etc", "letsencrypt", "archive", "example.org")
    genkey(os.path.join(arch, "privkey1.pem"))
    cert(os.path.join(arch, "privkey1.pem"), os.path.join(arch, "cert1.pem"))
    os.makedirs(p("etc", "letsencrypt", "live", "example.org"))
    for n in ("cert", "privkey"):
        os.symlink(f"../../archive/example.org/{n}1.pem",
                   p("etc", "letsencrypt", "live", "example.org", f"{n}.pem"))
    write(p("etc", "letsencrypt", "renewal", "example.org.conf"), "version = 2.9.0\n", 0o644)
    write(p("etc", "letsencrypt", "accounts", "acme-v02.api.letsencrypt.org", "directory",
            "0123abcd", "private_key.json"), '{"kty": "RSA"}\n')
    # acme.sh: an account key and a certificate's key
    genkey(p("root", ".acme.sh", "ca", "acme-v02.api.letsencrypt.org", "directory",
             "account.key"))
    genkey(p("root", ".acme.sh", "example.org_ecc", "example.org.key"))
    cert(p("root", ".acme.sh", "example.org_ecc", "example.org.key"),
         p("root", ".acme.sh", "example.org_ecc", "example.org.cer"))
    write(p("root", ".acme.sh", "account.conf"), "LOG_FILE=/dev/null\n")
    # WireGuard
    wgkey = run(["wg", "genkey"]).stdout.strip()
    write(p("etc", "wireguard", "wg0.conf"), f"[Interface]\nPrivateKey = {wgkey}\n")
    # OpenVPN: a server key, its certificate, a CA certificate, ta.key
    genkey(p("etc", "openvpn", "server", "server.key"))
    cert(p("etc", "openvpn", "server", "server.key"), p("etc", "openvpn", "server", "server.crt"))
    write(p("etc", "openvpn", "server", "ta.key"), os.urandom(256).hex() + "\n")
    write(p("etc", "openvpn", "server.conf"), "key server/server.key\n", 0o644)
    # BIND: a DNSSEC key pair as dnssec-keygen names it
    base = p("etc", "bind", "keys", "Kexample.org.+013+12345")
    write(base + ".key", "example.org. IN DNSKEY 257 3 13 AAAA\n", 0o644)
    write(base + ".private", "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n")
    # Tor: an onion service
    hs = p("var", "lib", "tor", "hidden_service")
    write(os.path.join(hs, "hs_ed25519_secret_key"), b"== ed25519v1-secret: type0 ==" + os.urandom(64))
    write(os.path.join(hs, "hs_ed25519_public_key"), b"== ed25519v1-public: type0 ==" + os.urandom(32))
    write(os.path.join(hs, "hostname"), "abcdefghijklmnop.onion\n")
    write(p("etc", "krb5.keytab"), os.urandom(128))
    # GnuPG
    # made in a short directory: gpg-agent's socket path has a limit
    home = tempfile.mkdtemp(prefix="gpg", dir="/tmp")
    try:
        run(["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key",
             "Test <test@example.org>", "ed25519", "sign", "1d"])
    finally:
        run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    gh = p("root", ".gnupg")
    shutil.copytree(home, gh, ignore=shutil.ignore_patterns("S.*"))
    shutil.rmtree(home)
    ngpg = len(os.listdir(os.path.join(gh, "private-keys-v1.d")))
    # Kubernetes (kubeadm's PKI, its etcd inside)
    pki = p("etc", "kubernetes", "pki")
    for k in ("ca", "apiserver", os.path.join("etcd", "ca")):
        genkey(os.path.join(pki, k + ".key"))
        cert(os.path.join(pki, k + ".key"), os.path.join(pki, k + ".crt"))
    write(p("var", "lib", "systemd", "credential.secret"), os.urandom(4096 + 32))
    # LUKS, listed through the test hook
    img = luks_image(tmp, "luks.img")
    write(os.path.join(tmp, "devices"), img + "\n")
    # places that hold no key: public certificates alone, an empty directory
    cert(p("etc", "letsencrypt", "archive", "example.org", "privkey1.pem"),
         p("etc", "ssl", "certs", "ca.pem"))
    os.makedirs(p("etc", "swanctl", "x509"))
    shutil.copy(p("etc", "ssl", "certs", "ca.pem"), p("etc", "swanctl", "x509", "peer.pem"))
    os.makedirs(p("etc", "ssl", "private"))
    os.makedirs(p("var", "lib", "kubelet", "pki"))
    shutil.copy(p("etc", "ssl", "certs", "ca.pem"), p("var", "lib", "kubelet", "pki", "kubelet.crt"))
    want = {
        "openssh": ("/etc/ssh", nssh),
        "certbot": ("/etc/letsencrypt", 2),
        "acme.sh": ("/root/.acme.sh", 2),
        "wireguard": ("/etc/wireguard", 1),
        "openvpn": ("/etc/openvpn", 2),
        "bind": ("/etc/bind/keys", 1),
        "tor": ("/var/lib/tor", 1),
        "krb5-keytab": ("/etc", 1),
        "gnupg": ("/root/.gnupg", ngpg),
        "kubernetes": ("/etc/kubernetes", 3),
        "systemd-credential": ("/var/lib/systemd", 1),
        "luks": (img, 1),
    }
    return r, want


def discover(build, tmp, *args, env=None):
    e = dict(os.environ, KEYFS_DISCOVER_LUKS_DEVICES=os.path.join(tmp, "devices"), **(env or {}))
    return keyfsctl(build, "discover", *args, env=e)


def found(out):
    """{preset: (path, key files, rest)} of discover's lines."""
    lines = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+(\S+)\s+(\d+) key files?\s+(.*)$", line)
        assert m, line
        assert m.group(1) not in lines, out
        lines[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4))
    return lines


def base_conf(tmp, store):
    return (f"[store]\npath = {store}\n[seal]\nwork_factor = 10\n"
            f"[presets]\ndir = {CATALOG}\n")


def test_discover_print_config_mount_and_notice_new_keys(build, keyfs_bin, tmp_path):
    tmp = str(tmp_path)
    root, want = make_root(tmp)
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[presets]\ndir = {CATALOG}\n")
    res = discover(build, tmp, "--root", root, "-c", str(conf))
    assert res.returncode == 1, res.stderr
    got = found(res.stdout)
    assert {k: v[:2] for k, v in got.items()} == want, res.stdout
    assert all(v[2] == "NOT COVERED" for v in got.values()), res.stdout

    res = discover(build, tmp, "--root", root, "-c", str(conf), "--print-config")
    assert res.returncode == 1, res.stderr
    sections = re.findall(r"^\[keyset (\S+)\]$", res.stdout, re.M)
    assert len(sections) == len(want) and len(set(sections)) == len(sections), res.stdout
    assert f"path = {root}/etc/ssh\n" in res.stdout
    assert f"target = {want['luks'][0]}\n" in res.stdout
    assert f"target = {root}/etc/bind/keys\n" in res.stdout
    printed = res.stdout

    with mounted(keyfs_bin, tmp_path, f"[presets]\ndir = {CATALOG}\n" + printed) as m:
        m.unlock()
        for name in sections:
            wait_export(m, name, timeout=30)
            members, _ = open_backup(read_pem(m, name), tmp_path, name)
            assert files_of(members, name), (name, list(members))
        # the members are the preset's: the ssh keys with their .pub
        ssh = files_of(open_backup(read_pem(m, "openssh"), tmp_path, "ssh2")[0], "openssh")
        assert "ssh_host_ed25519_key" in ssh and "ssh_host_ed25519_key.pub" in ssh, list(ssh)
        luks = [s for s in sections if s.startswith("luks-")]
        assert luks and "header.img" in files_of(
            open_backup(read_pem(m, luks[0]), tmp_path, "luks")[0], luks[0])

        res = discover(build, tmp, "--root", root, "-c", m.conf)
        assert res.returncode == 0, res.stdout + res.stderr
        got = found(res.stdout)
        assert set(got) == set(want)
        assert got["openssh"][2] == "covered by openssh", res.stdout
        assert got["luks"][2] == f"covered by {luks[0]}", res.stdout

        check = ["-m", m.path, "check", "--never", "ok", "--discover", "--root", root,
                 "--config", m.conf]
        env = dict(os.environ, KEYFS_DISCOVER_LUKS_DEVICES=os.path.join(tmp, "devices"))
        res = keyfsctl(build, *check, env=env)
        assert res.returncode == 0, res.stdout
        assert res.stdout.startswith("KEYFS OK - ") and "all covered" in res.stdout, res.stdout
        assert "uncovered_locations=0" in res.stdout, res.stdout

        # a new WireGuard interface: the wireguard keyset's include has it
        write(os.path.join(root, "etc", "wireguard", "wg1.conf"),
              "[Interface]\nPrivateKey = " + run(["wg", "genkey"]).stdout)
        assert keyfsctl(build, *check, env=env).returncode == 0
        # a key where no keyset looks yet
        genkey(os.path.join(root, "etc", "ssl", "private", "site.key"))
        res = keyfsctl(build, *check, env=env)
        assert res.returncode == 1, res.stdout
        assert res.stdout.startswith("KEYFS WARNING - "), res.stdout
        assert "/etc/ssl/private (ssl-private)" in res.stdout, res.stdout
        assert "uncovered_locations=1" in res.stdout, res.stdout
        res = discover(build, tmp, "--root", root, "-c", m.conf)
        assert res.returncode == 1 and found(res.stdout)["ssl-private"][1:] == (1, "NOT COVERED")


def test_no_key_no_location(build, tmp_path):
    """Public keys and certificates alone, empty directories: nothing to
    back up; a missing default configuration is no trouble."""
    root = tmp_path / "root"
    for d in ("etc/wireguard", "etc/ssl/private", "etc/openvpn/server", "etc/swanctl/x509"):
        os.makedirs(root / d)
    write(str(root / "etc/ssh/ssh_host_ed25519_key.pub"), "ssh-ed25519 AAAA test\n", 0o644)
    write(str(root / "etc/openvpn/server/ca.crt"), "-----BEGIN CERTIFICATE-----\n", 0o644)
    write(str(root / "etc/kubernetes/pki/ca.crt"), "-----BEGIN CERTIFICATE-----\n", 0o644)
    write(str(tmp_path / "devices"), "")
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[presets]\ndir = {CATALOG}\n")
    res = discover(build, str(tmp_path), "--root", str(root), "-c", str(conf))
    assert (res.returncode, res.stdout) == (0, ""), res.stderr
    assert re.search(r"no key found in the \d+ places of the catalog", res.stderr), res.stderr
    # trouble: an unreadable configuration, a catalog that is not there
    res = discover(build, str(tmp_path), "--root", str(root), "-c", str(tmp_path / "none.ini"))
    assert res.returncode == 2 and "none.ini" in res.stderr, res.stderr
    conf.write_text(f"[presets]\ndir = {tmp_path}/nothing\n")
    res = discover(build, str(tmp_path), "--root", str(root), "-c", str(conf))
    assert res.returncode == 2 and "nothing" in res.stderr, res.stderr


def test_metrics_textfile(build, tmp_path):
    root = tmp_path / "root"
    os.makedirs(root / "etc/ssh")
    run(["ssh-keygen", "-A", "-f", str(root)])
    write(str(tmp_path / "devices"), "")
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[presets]\ndir = {CATALOG}\n")
    prom = tmp_path / "discover.prom"
    res = discover(build, str(tmp_path), "--root", str(root), "-c", str(conf), "--metrics", str(prom))
    assert res.returncode == 1, res.stderr
    text = prom.read_text()
    assert "keyfs_discover_uncovered_locations 1\n" in text, text
    assert 'keyfs_discover_location_covered{preset="openssh",path="/etc/ssh"} 0\n' in text, text
    assert oct(os.stat(prom).st_mode & 0o777) == "0o644"


def test_preset_in_keyfs_ini(build, keyfs_bin, tmp_path):
    root = tmp_path / "root"
    os.makedirs(root / "etc/ssh")
    run(["ssh-keygen", "-A", "-f", str(root)])
    write(str(root / "etc/ssh/sshd_config"), "Port 22\n", 0o644)
    keysets = (f"[presets]\ndir = {CATALOG}\n"
               f"[keyset ssh]\npreset = openssh\npath = {root}/etc/ssh\n")
    with mounted(keyfs_bin, tmp_path, keysets) as m:
        m.unlock()
        wait_export(m, "ssh")
        members = files_of(open_backup(read_pem(m, "ssh"), tmp_path, "ssh")[0], "ssh")
        # include came from the preset: host keys and their .pub, no sshd_config
        assert "ssh_host_ed25519_key" in members and "ssh_host_ed25519_key.pub" in members
        assert "sshd_config" not in members, list(members)


def test_unknown_preset_is_a_config_error(build, keyfs_bin, tmp_path):
    conf = tmp_path / "keyfs.ini"
    conf.write_text(f"[presets]\ndir = {CATALOG}\n\n[keyset x]\npreset = no-such\n")
    os.makedirs(tmp_path / "mnt")
    res = subprocess.run([keyfs_bin, "-f", "-c", str(conf), "-o", f"store={tmp_path}/store",
                          str(tmp_path / "mnt")], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert f"{conf}:5: keyset x.preset: no such preset in {CATALOG}" in res.stderr, res.stderr
    res = keyfsctl(build, "discover", "-c", str(conf))
    assert res.returncode == 2 and f"{conf}:5: keyset x.preset" in res.stderr, res.stderr
