"""The Debian package as an administrator meets it: apt installs the .deb
that scripts/package built, with its dependencies; keyfs, keyfsctl and
keyfs-agent are in /usr/bin, the pages, the example configuration and the
systemd units (not enabled) where Debian keeps them; an fstab line mounts
a store with the installed /usr/bin/keyfs and an export opens with stock
age; apt-get purge leaves no file of the package behind, and installing
again works.

scripts/test builds the package (scripts/package) beside the other
tests and this module waits for it; alone, it uses the .deb in
build/package/ and builds one only if there is none (KEYFS_DEB names
another). It runs once, not once per build
in KEYFS_BUILDS, holds a lock so that two runs never share the dpkg
database, and purges the package at the end whatever happened. Its tests
run on one worker (one install), beside the other tests: those run keyfs
from their build directories and mount in private mount namespaces where
/usr/local would hide the package's programs, no other test runs apt or
dpkg, and none makes a file whose name mentions keyfs below /etc, /usr or
/var/lib, which traces() compares."""
import fcntl
import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import PASSWORD, ROOT, age_decrypt, background, run

PACKAGE = "keyfs"
OUT = os.path.join(ROOT, "build", "package")
BINARIES = ("/usr/bin/keyfs", "/usr/bin/keyfsctl", "/usr/bin/keyfs-agent")
UNITS = ("/usr/lib/systemd/system/keyfs@.service",
         "/usr/lib/systemd/system/keyfs-agent.service")
PAGES = ("/usr/share/man/man8/keyfs.8.gz", "/usr/share/man/man1/keyfsctl.1.gz",
         "/usr/share/man/man1/keyfs-agent.1.gz", "/usr/share/man/man5/keyfs.ini.5.gz")
EXAMPLE = "/usr/share/doc/keyfs/examples/keyfs.ini"
# Where a package's files and its traces in dpkg's and systemd's state
# live; /usr/local is the administrator's (and meson install's), not apt's.
SCANNED = ("/etc", "/usr", "/var/lib")
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                       reason="needs root and apt-get"),
    pytest.mark.xdist_group("package"),
]


def apt_get(*args):
    # Another apt or dpkg may hold the lock for a while: wait for it.
    return run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q", *args], env=APT_ENV)


def meson_version():
    res = run(["meson", "introspect", "--projectinfo", os.path.join(ROOT, "meson.build")])
    return json.loads(res.stdout)["version"]


def find_deb():
    if os.environ.get("KEYFS_DEB"):
        return os.environ["KEYFS_DEB"]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    pattern = os.path.join(OUT, f"{PACKAGE}_{meson_version()}-*_{arch}.deb")
    built = background("package", 1800)
    if built is not None:
        assert built[0] == 0, f"scripts/package failed:\n{built[1][-4000:]}"
    elif not glob.glob(pattern):
        run([os.path.join(ROOT, "scripts", "package")])
    debs = glob.glob(pattern)
    assert len(debs) == 1, f"expected one package matching {pattern}: {debs}"
    return debs[0]


def status():
    """dpkg's status of the package, '' if dpkg knows nothing of it."""
    res = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PACKAGE], check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


def purge():
    if status() not in ("", "un"):
        apt_get("purge", PACKAGE)
    assert status() in ("", "un"), status()


def traces():
    """Every path below SCANNED whose name mentions keyfs."""
    found = set()
    for top in SCANNED:
        for d, dirs, files in os.walk(top):
            if d == "/usr/local":
                dirs[:] = []
                continue
            found.update(os.path.join(d, n) for n in dirs + files if "keyfs" in n)
    return found


def listed():
    """dpkg -L: every path the installed package owns."""
    out = run(["dpkg", "-L", PACKAGE]).stdout.splitlines()
    return [p for p in out if p.startswith("/") and p != "/."]


class Package:
    def __init__(self, deb, before):
        self.deb = deb
        self.before = before  # traces() before the first install

    def install(self):
        # apt, unlike dpkg -i, also installs the dependencies; "./" makes it
        # a file name rather than a package name.
        apt_get("install", "--no-install-recommends", os.path.abspath(self.deb))
        assert status() == "ii", status()


@pytest.fixture(scope="module")
def package():
    os.makedirs("/run/lock", exist_ok=True)
    with open("/run/lock/keyfs-package-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        deb = find_deb()  # may build it
        purge()  # left by an interrupted run
        pkg = Package(deb, traces())
        try:
            pkg.install()
            yield pkg
        finally:
            purge()


def test_deb_version_and_dependencies(package):
    fields = run(["dpkg-deb", "-f", package.deb, "Version", "Depends"]).stdout
    version = fields.split("Version: ")[1].split("\n")[0]
    assert version.rsplit("-", 1)[0] == meson_version(), version
    depends = fields.split("Depends: ")[1]
    for dep in ("fuse3", "libfuse3-3", "libsodium23", "libarchive13", "libinih1"):
        assert dep in depends, depends


def test_installs_where_debian_keeps_things(package):
    files = listed()
    for path in BINARIES + UNITS + PAGES + (EXAMPLE,):
        assert path in files, f"{path} not in dpkg -L"
        assert os.path.isfile(path), path
    for path in BINARIES:
        assert os.access(path, os.X_OK), path
    assert run(["/usr/bin/keyfs", "--version"]).stdout.startswith(f"keyfs {meson_version()}")
    with open(os.path.join(ROOT, "conf", "keyfs.ini")) as src, open(EXAMPLE) as ex:
        assert src.read() == ex.read()
    for unit in UNITS:
        with open(unit) as f:
            assert "ExecStart=/usr/bin/keyfs" in f.read(), unit
    # A live configuration is the administrator's: nothing in /etc.
    assert not [p for p in files if p.startswith("/etc/")], files
    # Installed, not enabled: no unit is linked from a .wants directory.
    enabled = [os.path.join(d, n) for d, _, ns in os.walk("/etc/systemd") for n in ns
               if "keyfs" in n]
    assert not enabled, enabled
    res = run(["dpkg", "--verify", PACKAGE], check=False)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr


def daemons(mountpoint):
    """Pids of keyfs processes serving mountpoint."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"keyfs" and mountpoint.encode() in argv:
            pids.append(int(pid))
    return pids


class Namespace:
    """A private mount namespace, held open by a sleeping process, in which
    /usr/local/bin and /usr/local/sbin are empty: mount.fuse3 then finds
    keyfs where apt put it, as on a machine where nobody ran meson install
    (test_install.py may have)."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sleep", "600"])
        deadline = time.monotonic() + 10
        while not self._ready():  # mount nothing before the namespace is private
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("unshare did not start a mount namespace")
            time.sleep(0.01)
        for d in ("/usr/local/sbin", "/usr/local/bin"):
            if os.path.isdir(d):
                self.run(["mount", "-t", "tmpfs", "-o", "ro,mode=0755", "tmpfs", d])

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
        return f"/proc/{self.holder.pid}/root{p}"

    def mounted(self, mnt):
        with open(f"/proc/{self.holder.pid}/mounts") as f:
            return [line.split() for line in f if line.split()[1] == mnt]

    def close(self):
        self.holder.kill()
        self.holder.wait()


def test_fstab_line_mounts_with_the_installed_keyfs(package, store, tmp_path):
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("needs unshare and nsenter (util-linux)")
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    pwfile = tmp_path / "password"
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o600)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{store}  {mnt}  fuse.keyfs  "
                     f"work_factor=10,password_file={pwfile}  0  0\n")
    n = Namespace()
    try:
        n.run(["mount", "-T", str(fstab), mnt])
        entry = n.mounted(mnt)
        assert entry and entry[0][2] == "fuse.keyfs", entry
        pids = daemons(mnt)
        assert len(pids) == 1, pids
        assert os.readlink(f"/proc/{pids[0]}/exe") == "/usr/bin/keyfs"

        export = n.path(mnt + "/export/web.pem")
        with open(export, "rb") as f:
            sealed = f.read()
        assert sealed.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), sealed[:60]
        assert len(sealed) == os.stat(export).st_size
        if shutil.which("age"):
            copy = tmp_path / "web.pem"
            copy.write_bytes(sealed)
            res = age_decrypt(str(copy), str(tmp_path / "web.tar"), PASSWORD)
            assert res.returncode == 0, res.stdout + res.stderr
            members = run(["tar", "-tf", str(tmp_path / "web.tar")]).stdout.split()
            assert "web/KEYSET.ini" in members, members

        n.run(["umount", mnt])
        assert not n.mounted(mnt)
        deadline = time.monotonic() + 10
        while daemons(mnt):
            assert time.monotonic() < deadline, "keyfs still running 10 s after umount"
            time.sleep(0.05)
    finally:
        if n.mounted(mnt):
            n.run(["umount", "-l", mnt], check=False)
        for pid in daemons(mnt):
            os.kill(pid, 9)
        n.close()


def test_purge_removes_every_file_and_reinstall_works(package):
    files = listed()
    apt_get("purge", PACKAGE)
    assert status() in ("", "un"), status()
    left = [p for p in files if os.path.lexists(p) and not os.path.isdir(p)]
    assert not left, f"files left after purge: {left}"
    # A directory may stay only if another package owns it too.
    dirs = [p for p in files if os.path.isdir(p)]
    owned = run(["dpkg-query", "-S", *dirs], check=False).stdout if dirs else ""
    owned = {line.split(": ", 1)[1] for line in owned.splitlines() if ": " in line}
    assert not [d for d in dirs if d not in owned], f"directories left: {set(dirs) - owned}"
    # Nor anything dpkg, debhelper's scripts or systemd's helpers wrote.
    assert traces() == package.before, traces() ^ package.before

    package.install()
    assert set(listed()) == set(files)
    assert run(["/usr/bin/keyfs", "--version"]).stdout.startswith("keyfs ")


def test_check_timer_is_packaged(package, tmp_path):
    """keyfs-check@.timer, which the README recommends, is in the package
    beside its service, not enabled; systemd-analyze accepts both for a
    mountpoint, and the service's command is one keyfsctl check takes."""
    unitdir = "/usr/lib/systemd/system"
    files = listed()
    for name in ("keyfs-check@.service", "keyfs-check@.timer"):
        assert os.path.join(unitdir, name) in files, f"{name} not in dpkg -L"
    with open(os.path.join(unitdir, "keyfs-check@.service")) as f:
        service = f.read()
    execs = [line.split("=", 1)[1] for line in service.splitlines()
             if line.startswith("ExecStart=")]
    assert len(execs) == 1 and execs[0].startswith("/usr/bin/keyfsctl -m %f check"), execs
    with open(os.path.join(unitdir, "keyfs-check@.timer")) as f:
        assert "WantedBy=timers.target" in f.read()
    assert not [p for d, _, ns in os.walk("/etc/systemd") for p in ns if "keyfs-check" in p]
    # Nothing mounted there: CRITICAL (2), which fails the unit; the
    # options were taken (a usage error is UNKNOWN, 3).
    res = run(execs[0].replace("%f", str(tmp_path)).split(), check=False)
    assert res.returncode == 2 and \
        res.stdout.startswith(f"KEYFS CRITICAL - keyfs is not mounted on {tmp_path}"), \
        res.stdout + res.stderr
    if shutil.which("systemd-analyze"):
        instance = "keyfs-check@" + run(["systemd-escape", "--path", "/mnt/keys"]).stdout.strip()
        res = run(["systemd-analyze", "verify", os.path.join(unitdir, instance + ".timer"),
                   os.path.join(unitdir, instance + ".service")], check=False)
        assert res.returncode == 0 and res.stderr.strip() == "", res.stderr + res.stdout
