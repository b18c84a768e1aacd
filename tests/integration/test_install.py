"""Installation as an administrator meets it: meson install lays out the
binaries, man pages, example configuration and systemd units; the pages
render without warnings; the units pass systemd-analyze verify and keep
the FUSE mount visible to the host; and mount(8) starts keyfs through
mount.fuse3 from an fstab line or with -t fuse.keyfs, and umount stops it.

mount(8) clears PATH before it runs mount.fuse3, whose shell then finds
keyfs only in its default search path (/usr/local/sbin first). The mount
tests therefore run in a private mount namespace in which the build's
keyfs is bind-mounted over /usr/local/sbin and /usr/local/bin, as if
installed there, without touching the host."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, run

PAGES = {"keyfs.8": 8, "keyfsctl.1": 1, "keyfs-agent.1": 1, "keyfs.ini.5": 5}
UNITS = ("keyfs@.service", "keyfs-agent.service")
BINARIES = ("keyfs", "keyfsctl", "keyfs-agent")
# Each of these gives a unit a mount namespace of its own, whose mounts
# never reach the host (systemd.exec(5), PrivateMounts=): a keyfs started
# under any of them would mount where nobody can see it.
NAMESPACING = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
               "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths",
               "NoExecPaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem",
               "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
               "ProtectControlGroups", "ProtectProc", "ProcSubset", "PrivateIPC",
               "RootDirectory", "RootImage", "MountFlags")


def build_options(build):
    res = run(["meson", "introspect", "--buildoptions", build])
    return {o["name"]: o["value"] for o in json.loads(res.stdout)}


def under(dest, prefix, sub):
    """Where meson puts option directory sub (relative or absolute)."""
    return os.path.join(dest, os.path.join(prefix, sub).lstrip("/"))


@pytest.fixture
def installed(build, tmp_path):
    """meson install into a private destdir; returns (destdir, options)."""
    dest = str(tmp_path / "dest")
    run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"])
    return dest, build_options(build)


def unit_paths(dest):
    found = {}
    for d, _, files in os.walk(dest):
        for f in files:
            if f in UNITS and d.endswith(os.path.join("systemd", "system")):
                found[f] = os.path.join(d, f)
    return found


def test_install_lists_every_file(installed):
    dest, opt = installed
    prefix = opt["prefix"]
    expected = [under(dest, prefix, os.path.join(opt["bindir"], b)) for b in BINARIES]
    expected += [under(dest, prefix, os.path.join(opt["mandir"], f"man{s}", p))
                 for p, s in PAGES.items()]
    expected.append(under(dest, prefix, os.path.join(opt["datadir"], "doc", "keyfs", "keyfs.ini")))
    missing = [p for p in expected if not os.path.isfile(p)]
    assert not missing, f"not installed: {missing}"
    units = unit_paths(dest)
    assert sorted(units) == sorted(UNITS), f"units installed: {units}"

    for b in BINARIES:
        path = under(dest, prefix, os.path.join(opt["bindir"], b))
        assert os.access(path, os.X_OK), path
    res = run([under(dest, prefix, os.path.join(opt["bindir"], "keyfs")), "--version"])
    assert res.stdout.startswith("keyfs "), res.stdout

    # The example is documentation: a live /etc/keyfs/keyfs.ini is never
    # overwritten by an install.
    etc = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
           if "etc" in os.path.relpath(d, dest).split(os.sep)]
    assert not etc, f"installed into etc: {etc}"
    with open(os.path.join(ROOT, "conf", "keyfs.ini")) as src, \
            open(under(dest, prefix, os.path.join(opt["datadir"], "doc", "keyfs", "keyfs.ini"))) as ex:
        assert src.read() == ex.read()

    # The units name the installed binaries by absolute path.
    bindir = os.path.join(prefix, opt["bindir"])
    for name, path in units.items():
        with open(path) as f:
            text = f.read()
        assert "@" + "bindir@" not in text, name
        binary = "keyfs" if name == "keyfs@.service" else "keyfs-agent"
        assert re.search(rf"^ExecStart={re.escape(bindir)}/{binary} -f ", text, re.M), text


@pytest.mark.parametrize("page", sorted(PAGES))
def test_man_page_renders_without_warnings(page):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    path = os.path.join(ROOT, "man", page)
    res = run(["groff", "-ww", "-z", "-man", path], check=False)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    if shutil.which("man"):
        for width in ("60", "80", "132"):
            res = run(["man", "-l", path], check=False, env=dict(os.environ, MANWIDTH=width))
            assert res.returncode == 0 and res.stderr == "", f"width {width}: {res.stderr}"
            assert "NAME" in res.stdout


def roff_text(page):
    """The page's words with the common escapes undone, for grepping."""
    with open(os.path.join(ROOT, "man", page)) as f:
        text = f.read()
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\e", "\\")
    return re.sub(r"\\c\n", "", text)


def test_pages_document_every_option_key_and_errno():
    keyfs8 = roff_text("keyfs.8")
    for opt in ("store=", "state_dir=", "work_factor=", "config=", "agent=", "password_file=",
                "password_credential=", "allow_other"):
        assert opt in keyfs8, opt
    for err in ("ENOKEY", "EKEYREJECTED", "EINVAL", "EBADMSG", "EFBIG", "ENOSPC", "EIO"):
        assert re.search(rf"^\.B {err}$", keyfs8, re.M), err
    for cmd in ("password", "unlock", "forget", "hint", "activate"):
        assert re.search(rf"^\.B[IR]? {cmd}\b", keyfs8, re.M), cmd
    for word in ("SIGTERM", "SIGHUP", "fuse.keyfs", "keyfs@.service", "age -d", "tar -x"):
        assert word in keyfs8, word

    # Every key of the example configuration, commented out or not.
    ini5 = roff_text("keyfs.ini.5")
    section = None
    keys = []
    with open(os.path.join(ROOT, "conf", "keyfs.ini")) as f:
        for line in f:
            m = re.match(r"^\[(\w+)\]", line)
            if m:
                section = m.group(1)
            m = re.match(r"^;?(\w+) = ", line)
            if m and section:
                keys.append((section, m.group(1)))
    assert len(keys) >= 12, keys
    for section, key in keys:
        assert f".SH SECTION [{section}]" in ini5, section
        body = ini5.split(f".SH SECTION [{section}]")[1].split(".SH ")[0]
        assert re.search(rf"^\.BI {key} \"", body, re.M), f"{section}.{key}"

    ctl1 = roff_text("keyfsctl.1")
    for cmd in ("password", "status", "unlock", "forget", "activate", "verify", "agent add",
                "agent remove", "agent list", "--stdin", "--keyset"):
        assert cmd in ctl1, cmd
    agent1 = roff_text("keyfs-agent.1")
    for word in ("SO_PEERCRED", "agent.sock", "XDG_RUNTIME_DIR", "u32", "u16"):
        assert word in agent1, word


def unit_settings(path):
    settings = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^(\w+)=(.*)$", line.rstrip("\n"))
            if m:
                settings.append((m.group(1), m.group(2)))
    return settings


def test_keyfs_unit_hardening_keeps_the_mount_visible(installed):
    dest, _ = installed
    settings = unit_settings(unit_paths(dest)["keyfs@.service"])
    keys = dict(settings)
    ns = [k for k, v in settings if k in NAMESPACING]
    assert not ns, f"these hide the FUSE mount from the host: {ns}"
    assert keys.get("PrivateMounts") in (None, "no"), keys.get("PrivateMounts")
    if keys.get("PrivateNetwork") == "yes":
        # PrivateNetwork= implies a mount namespace unless told otherwise
        assert keys.get("PrivateMounts") == "no"
    assert keys["NoNewPrivileges"] == "yes"
    assert keys["CapabilityBoundingSet"] == "CAP_SYS_ADMIN"
    assert keys["DevicePolicy"] == "closed"
    assert ("DeviceAllow", "/dev/fuse rw") in settings
    assert keys["LoadCredential"] == "keyfs.password:/etc/keyfs/password"
    assert "-o password_credential=keyfs.password" in keys["ExecStart"]
    assert keys["ExecStart"].endswith(" %f")
    assert "@mount" in keys["SystemCallFilter"]

    agent = dict(unit_settings(unit_paths(dest)["keyfs-agent.service"]))
    for k, v in (("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                 ("PrivateDevices", "yes"), ("NoNewPrivileges", "yes"),
                 ("RuntimeDirectoryMode", "0700")):
        assert agent.get(k) == v, k


def test_systemd_analyze_verifies_the_units(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    dest, opt = installed
    # The units name /usr/.../bin/keyfs, which exists only in the destdir:
    # verify copies whose Exec lines point there.
    udir = tmp_path / "units"
    udir.mkdir()
    for name, path in unit_paths(dest).items():
        with open(path) as f:
            text = f.read()

        def into_dest(m):
            exe = m.group(2)
            staged = os.path.join(dest, exe.lstrip("/"))
            return m.group(1) + (staged if not os.path.exists(exe) and os.path.exists(staged)
                                 else exe)
        text = re.sub(r"^(Exec\w+=[-@:+!]*)(/\S+)", into_dest, text, flags=re.M)
        (udir / name).write_text(text)
    # Documentation= is checked with man(1): find the installed pages.
    env = dict(os.environ, MANPATH=under(dest, opt["prefix"], opt["mandir"]))
    res = run(["systemd-analyze", "verify", str(udir / "keyfs@mnt-keys.service"),
               str(udir / "keyfs-agent.service")], check=False, env=env)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr + res.stdout


def keyfs_pids(mountpoint):
    """Processes running keyfs for this mountpoint."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"keyfs" and mountpoint.encode() in argv:
            pids.append(int(pid))
    return pids


class Namespace:
    """A private mount namespace, held open by a sleeping process, in which
    keyfs is installed in the shell's default search path."""

    def __init__(self, keyfs_bin, tmp):
        self.bin = os.path.join(tmp, "sbin")
        os.makedirs(self.bin)
        os.symlink(os.path.abspath(keyfs_bin), os.path.join(self.bin, "keyfs"))
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sleep", "600"])
        # Mount nothing before unshare has made its mounts private and
        # exec'ed sleep: until then a bind mount would reach the host.
        deadline = time.monotonic() + 10
        while not self._ready():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("unshare did not start a mount namespace")
            time.sleep(0.01)
        for d in ("/usr/local/sbin", "/usr/local/bin"):
            if os.path.isdir(d):
                self.run(["mount", "--bind", self.bin, d])

    def _ready(self):
        pid = self.holder.pid
        try:
            return (os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "sleep" and
                    os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"))
        except OSError:
            return False

    def run(self, cmd, check=True):
        return run(["nsenter", "-t", str(self.holder.pid), "-m", *cmd], check=check)

    def path(self, p):
        """p as seen inside the namespace."""
        return f"/proc/{self.holder.pid}/root{p}"

    def mounts(self):
        with open(f"/proc/{self.holder.pid}/mounts") as f:
            return [line.split() for line in f]

    def close(self):
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def ns(keyfs_bin, tmp_path):
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("mount.fuse3")):
        pytest.skip("needs unshare, nsenter and mount.fuse3 (util-linux, fuse3)")
    n = Namespace(keyfs_bin, str(tmp_path))
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    try:
        yield n, mnt
    finally:
        if any(m[1] == mnt for m in n.mounts()):
            n.run(["umount", "-l", mnt], check=False)
        for pid in keyfs_pids(mnt):
            os.kill(pid, 9)
        n.close()


def check_mount_and_umount(n, mnt, store):
    entry = [m for m in n.mounts() if m[1] == mnt]
    assert entry and entry[0][2] == "fuse.keyfs", entry
    names = sorted(os.listdir(n.path(mnt + "/export")))
    assert {"web.pem", "db.pem"} <= set(names), names
    pids = keyfs_pids(mnt)
    assert len(pids) == 1, pids
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        assert store.encode() in f.read().split(b"\0")  # mount.fuse3 passed the source

    n.run(["umount", mnt])
    assert not any(m[1] == mnt for m in n.mounts())
    deadline = time.monotonic() + 10
    while keyfs_pids(mnt):
        assert time.monotonic() < deadline, \
            f"keyfs (pid {pids[0]}) still running 10 s after umount"
        time.sleep(0.05)


def test_fstab_line_mounts_through_mount_fuse3(ns, store, tmp_path):
    n, mnt = ns
    conf = tmp_path / "keyfs.ini"
    conf.write_text("[import]\nmax_size = 65536\n")
    fstab = tmp_path / "fstab"
    # the form keyfs(8) documents; nofail is mount(8)'s, not keyfs'
    fstab.write_text(f"# keyfs\n{store}  {mnt}  fuse.keyfs  "
                     f"work_factor=10,config={conf},nofail  0  0\n")
    n.run(["mount", "-T", str(fstab), mnt])
    check_mount_and_umount(n, mnt, store)


def test_mount_type_fuse_keyfs(ns, store):
    n, mnt = ns
    n.run(["mount", "-t", "fuse.keyfs", store, mnt, "-o", "work_factor=10"])
    check_mount_and_umount(n, mnt, store)
