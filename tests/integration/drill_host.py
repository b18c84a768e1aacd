"""One host of the disaster-recovery drill (test_drill.py), run inside a
private mount namespace whose /etc/passwd and /etc/group are the host's
own, so that keyfs and every tool here see its user and group numbers.

  drill_host.py a WORK BUILD   builds the live trees, mounts keyfs,
                               backs export/ up with restic
  drill_host.py b WORK BUILD   a rebuilt host: restic restore, then
                               keyfsctl restore --activate, checks

Each writes WORK/<host>.json: a manifest of every live tree, and what the
commands said. The test compares the two."""
import hashlib
import json
import os
import pwd
import grp
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import PASSWORD, Mount, run, wait_for  # noqa: E402

KEYSETS = ("ssh", "letsencrypt", "wireguard", "ssl", "luks")
USER, GROUP = "keyfs-drill", "keyfs-drill-ssl"
LUKS_PW = "drill-luks-passphrase"


def paths(work):
    root = os.path.join(work, "root", "etc")
    return {
        "ssh": os.path.join(root, "ssh"),
        "letsencrypt": os.path.join(root, "letsencrypt"),
        "wireguard": os.path.join(root, "wireguard"),
        "ssl": os.path.join(root, "ssl", "private"),
        "luks": os.path.join(root, "luks"),
    }


def config(work):
    p = paths(work)
    hook = os.path.join(work, "hook")
    inc = {
        "ssh": "ssh_host_*_key ssh_host_*_key.pub",
        "letsencrypt": "accounts/** archive/** live/** renewal/**",
        "wireguard": "*.conf",
        "ssl": "*.key",
        "luks": "*.header",
    }
    # host A's signer line, kept off the server as an administrator would
    text = f"[import]\nsigners = {os.path.join(work, 'allowed_signers')}\n"
    for k in KEYSETS:
        text += f"[keyset {k}]\npath = {p[k]}\ninclude = {inc[k]}\non_activate = {hook} {k}\n"
    return text


def write(path, data, mode, owner=None, group=None):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if owner or group:
        os.chown(path, pwd.getpwnam(owner).pw_uid if owner else 0,
                 grp.getgrnam(group).gr_gid if group else 0)


def wg_key():
    if shutil.which("wg"):
        return run(["wg", "genkey"]).stdout.strip()
    import base64
    return base64.b64encode(os.urandom(32)).decode()


def build_trees(work):
    p = paths(work)
    # ssh host keys, as a fresh install makes them
    os.makedirs(p["ssh"])
    run(["ssh-keygen", "-A", "-f", os.path.join(work, "root")])
    # a certbot tree: live/ links into archive/, a renewal config
    le = p["letsencrypt"]
    arch = os.path.join(le, "archive", "example.org")
    live = os.path.join(le, "live", "example.org")
    os.makedirs(arch)
    os.makedirs(live)
    os.makedirs(os.path.join(le, "renewal"))
    os.makedirs(os.path.join(le, "accounts", "acme-v02.api.letsencrypt.org"), mode=0o700)
    for name in ("cert", "chain", "fullchain", "privkey"):
        write(os.path.join(arch, f"{name}1.pem"), f"{name} of example.org\n".encode(),
              0o600 if name == "privkey" else 0o644)
        os.symlink(f"../../archive/example.org/{name}1.pem", os.path.join(live, f"{name}.pem"))
    write(os.path.join(le, "renewal", "example.org.conf"),
          f"archive_dir = {arch}\ncert = {live}/cert.pem\n".encode(), 0o644)
    write(os.path.join(le, "accounts", "acme-v02.api.letsencrypt.org", "private_key.json"),
          b'{"kty": "RSA"}\n', 0o400)
    os.chmod(os.path.join(le, "archive"), 0o700)
    os.chmod(os.path.join(le, "live"), 0o700)
    # wireguard
    os.makedirs(p["wireguard"], mode=0o700)
    write(os.path.join(p["wireguard"], "wg0.conf"),
          f"[Interface]\nPrivateKey = {wg_key()}\nListenPort = 51820\n".encode(), 0o600)
    # /etc/ssl/private: 0710 root:GROUP, a key only that group reads, a
    # key a service user owns with an xattr
    os.makedirs(p["ssl"])
    os.chown(p["ssl"], 0, grp.getgrnam(GROUP).gr_gid)
    os.chmod(p["ssl"], 0o710)
    write(os.path.join(p["ssl"], "site.key"), b"site private key\n", 0o640, group=GROUP)
    exp = os.path.join(p["ssl"], "exporter.key")
    write(exp, b"exporter private key\n", 0o600, owner=USER, group=GROUP)
    os.setxattr(exp, "user.purpose", b"metrics exporter")
    # a LUKS2 header backup of an image file
    os.makedirs(p["luks"], mode=0o700)
    img = os.path.join(work, "disk.img")
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2",
         "--pbkdf-force-iterations", "1000", "--key-file", "-", img], input=LUKS_PW)
    run(["cryptsetup", "luksHeaderBackup", img, "--header-backup-file",
         os.path.join(p["luks"], "disk.header")])


def manifest(work):
    """Every entry below each live path, with owners by name (this host's
    names for the numbers on disk)."""
    out = {}
    for k, top in paths(work).items():
        for d, dirs, files in os.walk(top):
            dirs.sort()
            for name in [""] + sorted(dirs + files) if d == top else sorted(dirs + files):
                p = os.path.join(d, name) if name else d
                st = os.lstat(p)
                e = {
                    "mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                    "user": pwd.getpwuid(st.st_uid).pw_name,
                    "group": grp.getgrgid(st.st_gid).gr_name,
                }
                if os.path.islink(p):
                    e["link"] = os.readlink(p)
                else:
                    e["xattrs"] = {x: os.getxattr(p, x).hex() for x in sorted(os.listxattr(p))}
                if os.path.isfile(p) and not os.path.islink(p):
                    e["sha256"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
                if name:  # a keyset's own directory takes writes; its time is the host's
                    e["mtime"] = int(st.st_mtime)
                out[os.path.relpath(p, work)] = e
    return out


def start(work, build):
    store = os.path.join(work, "store")
    os.makedirs(store, exist_ok=True)
    conf = os.path.join(work, "keyfs.ini")
    with open(conf, "w") as f:
        f.write(config(work))
    m = Mount(os.path.join(build, "keyfs"), work, store)
    m.start("-c", conf)
    m.unlock()
    return m


def restic(work, *args):
    env = dict(os.environ, RESTIC_PASSWORD="drill-restic", RESTIC_CACHE_DIR=os.path.join(work,
               "restic-cache"))
    return run(["restic", "-q", "-r", os.path.join(work, "repo"), *args], env=env)


def exports_ready(m):
    names = sorted(os.listdir(m.export))
    return names == sorted([f"{k}.pem" for k in KEYSETS] + ["README.txt"])


def host_a(work, build):
    build_trees(work)
    m = start(work, build)
    try:
        assert wait_for(lambda: exports_ready(m), 30), os.listdir(m.export)
        for k in KEYSETS:  # sealed, whole
            with open(os.path.join(m.export, f"{k}.pem"), "rb") as f:
                assert f.read(10) == b"-----BEGIN"
        line = run([os.path.join(build, "keyfsctl"), "-m", m.path, "signer"]).stdout
        with open(os.path.join(work, "allowed_signers"), "w") as f:
            f.write(line)
        restic(work, "init")
        restic(work, "backup", m.export)
        res = {"manifest": manifest(work), "mnt": m.path}
        m.stop()
    finally:
        m.kill()
    return res


def host_b(work, build):
    m = start(work, build)
    try:
        restic(work, "restore", "latest", "--target", os.path.join(work, "restored"))
        backup = os.path.join(work, "restored") + m.export
        ctl = os.path.join(build, "keyfsctl")
        restore = run([ctl, "-m", m.path, "restore", "--activate", backup], check=False)
        res = {"restore": [restore.returncode, restore.stdout, restore.stderr],
               "manifest": manifest(work), "pub": {}}
        for key in sorted(os.listdir(paths(work)["ssh"])):
            if key.endswith("_key"):
                p = os.path.join(paths(work)["ssh"], key)
                derived = run(["ssh-keygen", "-y", "-f", p]).stdout.split()[:2]
                res["pub"][key] = derived == open(p + ".pub").read().split()[:2]
        luks = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", "-",
                               "--header", os.path.join(paths(work)["luks"], "disk.header"),
                               os.path.join(work, "disk.img")], input=LUKS_PW, text=True,
                              capture_output=True)
        res["luks"] = [luks.returncode, luks.stderr]
        # a backup run, a check, and a second run that has nothing to send
        copy = os.path.join(work, "copy") + "/"
        run(["rsync", "-a", m.export + "/", copy])
        check = run([ctl, "-m", m.path, "check"], check=False)
        res["check"] = [check.returncode, check.stdout]
        again = run(["rsync", "-a", "--stats", m.export + "/", copy]).stdout
        res["rsync_again"] = again
        m.stop()
    finally:
        m.kill()
    return res


def main():
    host, work, build = sys.argv[1:4]
    res = (host_a if host == "a" else host_b)(work, build)
    with open(os.path.join(work, f"{host}.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
