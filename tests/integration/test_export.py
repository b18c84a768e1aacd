"""Exports: sealed age files read with cp and tar, opened with stock age."""
import errno
import os
import stat

import pytest

from conftest import PASSWORD, Mount, age_decrypt, recipients_file, run, wait_for


def test_tree_layout(mount):
    names = sorted(os.listdir(mount.path))
    assert names == [".control", ".keysets", ".metrics", "export", "import", "verify"]
    modes = {n: stat.S_IMODE(os.stat(os.path.join(mount.path, n)).st_mode) for n in names}
    assert modes == {".control": 0o600, ".keysets": 0o400, ".metrics": 0o444, "export": 0o500,
                     "import": 0o700, "verify": 0o700}
    assert sorted(os.listdir(mount.export)) == ["README.txt", "db.pem", "web.pem"]
    assert stat.S_IMODE(os.stat(os.path.join(mount.export, "web.pem")).st_mode) == 0o400
    assert stat.S_IMODE(os.stat(os.path.join(mount.export, "README.txt")).st_mode) == 0o444


def test_locked_export_stats_but_does_not_open(mount):
    st = os.stat(os.path.join(mount.export, "web.pem"))
    assert st.st_size > 0 and st.st_blocks == (st.st_size + 511) // 512
    res = run(["cat", os.path.join(mount.export, "web.pem")], check=False)
    assert res.returncode != 0
    assert "Required key not available" in res.stderr
    assert "locked" in mount.status()


def test_cp_then_stock_age_and_tar_restore_the_store(mount, tmp_path, store):
    mount.unlock()
    backup = tmp_path / "backup"
    backup.mkdir()
    run(["cp", *[os.path.join(mount.export, f) for f in ("web.pem", "db.pem")], str(backup)])
    for ks in ("web", "db"):
        pem = backup / f"{ks}.pem"
        text = pem.read_text()
        assert text.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
        assert text.endswith("-----END AGE ENCRYPTED FILE-----\n")
        assert all(len(line) <= 64 for line in text.splitlines())
        res = age_decrypt(pem, tmp_path / f"{ks}.tar", PASSWORD)
        assert res.returncode == 0, res.stdout
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        run(["tar", "-xf", str(tmp_path / f"{ks}.tar"), "-C", str(out)])
        restored = out / ks
        members = sorted(p for p in os.listdir(restored) if p not in ("KEYSET.ini", "KEYSET.sig"))
        assert members == sorted(os.listdir(os.path.join(store, ks)))
        for m in members:
            src = os.path.join(store, ks, m)
            assert (restored / m).read_bytes() == open(src, "rb").read()
            assert stat.S_IMODE(os.stat(restored / m).st_mode) == stat.S_IMODE(os.stat(src).st_mode)
        ini = (restored / "KEYSET.ini").read_text()
        assert f"name = {ks}\n" in ini and "format = 1\n" in ini and "fingerprint = " in ini


def test_wrong_password_does_not_open_export(mount, tmp_path):
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), str(tmp_path)])
    res = age_decrypt(tmp_path / "web.pem", tmp_path / "web.tar", "Wrong-Horse-7")
    assert res.returncode != 0
    assert "incorrect passphrase" in res.stdout or "no identity matched" in res.stdout
    assert not (tmp_path / "web.tar").exists() or (tmp_path / "web.tar").stat().st_size == 0


def test_size_is_exact_before_and_after_sealing(mount):
    locked = {f: os.stat(os.path.join(mount.export, f)).st_size for f in os.listdir(mount.export)}
    mount.unlock()
    for f in os.listdir(mount.export):
        p = os.path.join(mount.export, f)
        size = int(run(["stat", "-c", "%s", p]).stdout)
        count = int(run(["wc", "-c", p]).stdout.split()[0])
        assert size == count, f
        if f.endswith(".pem"):
            assert locked[f] == size, f


def test_tar_of_export_has_no_warning(mount, tmp_path):
    mount.unlock()
    res = run(["tar", "-cf", str(tmp_path / "all.tar"), "-C", mount.path, "export"])
    assert res.stderr == ""
    listed = run(["tar", "-tf", str(tmp_path / "all.tar")]).stdout.split()
    assert sorted(listed) == ["export/", "export/README.txt", "export/db.pem", "export/web.pem"]


def test_cp_r_and_rsync_see_the_listing(mount, tmp_path):
    mount.unlock()
    run(["cp", "-r", mount.export, str(tmp_path / "cp")])
    run(["rsync", "-r", mount.export + "/", str(tmp_path / "rsync")])
    for d in ("cp", "rsync"):
        assert sorted(os.listdir(tmp_path / d)) == ["README.txt", "db.pem", "web.pem"]
        for f in ("db.pem", "web.pem"):
            assert (tmp_path / d / f).read_bytes() == open(os.path.join(mount.export, f), "rb").read()


@pytest.mark.parametrize("password,reason", [
    ("Sh0rt!", "shorter than 8"),
    ("alllowercase1!", "upper-case"),
    ("ALLUPPERCASE1!", "lower-case"),
    ("NoDigitsHere!", "digit"),
    ("NoSymbols123", "symbol"),
])
def test_weak_password_is_refused(mount, password, reason):
    assert mount.control(f"password {password}") == errno.EINVAL
    assert reason in mount.logtext()
    assert password not in mount.logtext()
    assert "not set" in mount.status()
    res = run(["cat", os.path.join(mount.export, "web.pem")], check=False)
    assert "Required key not available" in res.stderr


def test_forget_locks_again(mount):
    mount.unlock()
    with open(os.path.join(mount.export, "web.pem"), "rb") as f:
        assert f.read(10) == b"-----BEGIN"
    assert mount.control("forget") == 0
    with pytest.raises(OSError) as e:
        open(os.path.join(mount.export, "web.pem"), "rb")
    assert e.value.errno == errno.ENOKEY


def test_hint_reaches_readme_and_keyset_ini(mount, tmp_path):
    mount.unlock()
    assert mount.control("hint the blue notebook, page 3") == 0
    readme = open(os.path.join(mount.export, "README.txt")).read()
    assert "the blue notebook, page 3" in readme
    assert "age -d" in readme and "tar -x" in readme
    run(["cp", os.path.join(mount.export, "db.pem"), str(tmp_path)])
    assert age_decrypt(tmp_path / "db.pem", tmp_path / "db.tar", PASSWORD).returncode == 0
    ini = run(["tar", "-xOf", str(tmp_path / "db.tar"), "db/KEYSET.ini"]).stdout
    assert "hint = the blue notebook, page 3\n" in ini


def test_status_has_no_secret(mount):
    mount.unlock()
    status = mount.status()
    assert "set (unlocked)" in status
    assert "web" in status and "db" in status
    assert PASSWORD not in status
    assert PASSWORD not in mount.logtext()


def test_unknown_command_and_huge_write_are_refused(mount):
    assert mount.control("frobnicate") == errno.EINVAL
    assert mount.control("password " + "A1!a" * 2000) == errno.EINVAL


def test_clean_stop_on_sigterm(keyfs_bin, tmp_path, store):
    from conftest import Mount
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        m.proc.terminate()
        assert m.proc.wait(timeout=20) == 0
        assert not os.path.ismount(m.path)
    finally:
        m.kill()


def test_threads_say_what_they_do(keyfs_bin, tmp_path, store):
    """ps -L and top -H tell the daemon's background work from the
    threads that answer requests, which keep the daemon's name. Sealing
    ahead of demand and writing the backup records yield the CPU to the
    requests: a status or a listing while a store seals waits on neither."""
    def threads(pid):
        task, nice = f"/proc/{pid}/task", {}
        for t in os.listdir(task):
            try:
                comm = open(f"{task}/{t}/comm").read().strip()
                # stat: "pid (comm) state ...", nice is its 19th field
                fields = open(f"{task}/{t}/stat").read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # a thread that ended meanwhile, such as the first scan
            nice.setdefault(comm, set()).add(int(fields[16]))
        return nice

    names = {"keyfs", "keyfs-watch", "keyfs-seal", "keyfs-record"}
    m = Mount(keyfs_bin, str(tmp_path), store).start()
    try:
        # a thread names itself and sets its priority as it starts,
        # which may come a moment after the mount
        def settled():
            nice = threads(m.proc.pid)
            return names <= set(nice) and nice["keyfs-seal"] == nice["keyfs-record"] == {10}
        wait_for(settled, 10)
        nice = threads(m.proc.pid)
        assert names <= set(nice), nice
        assert nice["keyfs"] == {0} and nice["keyfs-watch"] == {0}, nice
        assert nice["keyfs-seal"] == {10} and nice["keyfs-record"] == {10}, nice
        m.stop()
    finally:
        m.kill()


def test_work_factor_out_of_range_is_refused(keyfs_bin, tmp_path, store):
    res = run([keyfs_bin, "-f", "-o", f"store={store},work_factor=23", str(tmp_path)], check=False)
    assert res.returncode != 0
    assert "work_factor" in res.stderr


def test_names_right_after_a_mount(keyfs_bin, tmp_path, store):
    """A mount lists names from what the run before found, before it
    walks the keysets again: a keyset it sealed at once, not one it found
    could not be exported (marked in STATE/problems/), and one made while
    keyfs was stopped only once examined."""
    m = Mount(keyfs_bin, str(tmp_path), store)
    mark = os.path.join(store, ".keyfs", "problems", "db")
    opts = f"recipients={recipients_file(tmp_path)}"
    try:
        m.start(opts=opts)
        for name in ("web", "db"):
            with open(os.path.join(m.export, f"{name}.pem"), "rb") as f:
                assert f.read().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
        fifo = os.path.join(store, "db", "pipe")
        os.mkfifo(fifo)  # not a key file: db cannot be exported
        assert wait_for(lambda: "db.pem" not in os.listdir(m.export), 10)
        assert wait_for(lambda: os.path.exists(mark), 10)
        m.stop()
        os.mkdir(os.path.join(store, "late"), 0o700)
        os.mkfifo(os.path.join(store, "late", "pipe"))
        m.start(opts=opts)
        names = os.listdir(m.export)
        assert "web.pem" in names and "db.pem" not in names and "late.pem" not in names, names
        os.unlink(fifo)
        assert wait_for(lambda: "db.pem" in os.listdir(m.export), 10)
        assert wait_for(lambda: not os.path.exists(mark), 10)
        m.stop()
    finally:
        m.kill()
