"""Backup freshness: which exports were read to the end, keyfsctl check
(monitoring-plugins exit codes), keyfsctl metrics and metrics.file."""
import os
import re
import shutil
import stat
import threading
import time

import pytest

from conftest import PASSWORD, Mount, run

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def keyfsctl(build, *args):
    return run([os.path.join(build, "keyfsctl"), *args], check=False)


def check(build, mount, *args):
    res = keyfsctl(build, "-m", mount.path, "check", *args)
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout + res.stderr
    assert re.match(r"^KEYFS (OK|WARNING|CRITICAL|UNKNOWN) - ", lines[0]), lines[0]
    return res.returncode, lines[0]


def metrics(build, mount):
    res = keyfsctl(build, "-m", mount.path, "metrics")
    assert res.returncode == 0, res.stderr
    return res.stdout


def sample(text, name, **labels):
    """The value of one sample, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(head):
            return float(line[len(head):])
    return None


def status_line(mount, keyset):
    for line in mount.status().splitlines():
        if re.match(rf"^  {keyset} ", line):
            return line
    raise AssertionError(mount.status())


def wait_for(cond, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    return cond()


def promtool():
    tool = shutil.which("promtool")
    if not tool:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    return tool


def test_cp_is_a_backup_head_is_not(mount, build, tmp_path):
    mount.unlock()
    web = os.path.join(mount.export, "web.pem")
    assert "never backed up" in status_line(mount, "web")
    run(["sh", "-c", f"head -c 100 {web} > {tmp_path}/part"])
    assert os.path.getsize(tmp_path / "part") == 100
    assert "never backed up" in status_line(mount, "web"), "a partial read counted"
    db = os.path.join(mount.export, "db.pem")
    run(["sh", "-c", f"tail -c 1 {db} > {tmp_path}/last"])
    assert os.path.getsize(tmp_path / "last") == 1
    assert "never backed up" in status_line(mount, "db"), "a read of the last byte counted"
    run(["cp", web, str(tmp_path)])
    line = status_line(mount, "web")
    assert re.search(r"backed up \d{4}-\d\d-\d\dT[\d:]+Z by cp \(uid 0\)", line), line
    assert "never backed up" in status_line(mount, "db")
    assert "backups: 1/2 backed up, 0 changed since last backup, 1 never backed up" in mount.status()
    text = metrics(build, mount)
    assert sample(text, "keyfs_keyset_backup_state", keyset="web", state="backed_up") == 1
    assert sample(text, "keyfs_keyset_backup_state", keyset="db", state="never") == 1
    assert abs(sample(text, "keyfs_keyset_backup_timestamp_seconds", keyset="web") - time.time()) < 60
    assert sample(text, "keyfs_keyset_backup_timestamp_seconds", keyset="db") == 0
    assert sample(text, "keyfs_keysets", state="backed_up") == 1
    assert sample(text, "keyfs_keysets", state="never") == 1
    assert sample(text, "keyfs_locked") == 0


def test_an_export_read_in_several_requests_is_a_backup_only_whole(mount, store, tmp_path):
    """The kernel asks for 16 KiB at most per read request: an export
    larger than that reaches keyfs in several. One read() still returns
    it whole, and only the request that completes it is the backup."""
    with open(os.path.join(store, "db", "big.key"), "wb") as f:
        f.write(os.urandom(60_000))
    mount.unlock()
    pem = os.path.join(mount.export, "db.pem")
    assert wait_for(lambda: os.path.getsize(pem) > 4 * 16384), os.path.getsize(pem)
    size = os.path.getsize(pem)
    run(["sh", "-c", f"head -c {size - 1} {pem} > {tmp_path}/part"])
    assert os.path.getsize(tmp_path / "part") == size - 1
    assert "never backed up" in status_line(mount, "db"), "a read short of the end counted"
    fd = os.open(pem, os.O_RDONLY)
    try:
        whole = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    assert len(whole) == size
    assert whole[:-1] == (tmp_path / "part").read_bytes()
    run(["dd", f"if={pem}", f"of={tmp_path}/dd.pem", "bs=1M", "status=none"])
    assert (tmp_path / "dd.pem").read_bytes() == whole
    assert re.search(r"backed up \S+ by dd \(uid 0\)", status_line(mount, "db"))
    assert "never backed up" in status_line(mount, "web")


def record_writer_switches(pid):
    """How often the thread writing the backup records was switched in
    after a wait (its voluntary context switches)."""
    task = f"/proc/{pid}/task"
    for t in os.listdir(task):
        if open(f"{task}/{t}/comm").read().strip() == "keyfs-record":
            for line in open(f"{task}/{t}/status"):
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    raise AssertionError("no keyfs-record thread")


def test_a_backup_of_many_exports_wakes_the_record_writer_once_a_round(mount):
    """Each export a backup reads to the end changes its backup record.
    The writer writes a round a second at most; woken in its pause, it
    only waits again. Only the first change of a round wakes it, not each:
    on a busy machine, a switch per file read slows the backup."""
    mount.unlock()
    files = [os.path.join(mount.export, f"{ks}.pem") for ks in ("web", "db")]
    run(["cat", *files])  # sealed; the writer woken for these, its round begun
    before = record_writer_switches(mount.proc.pid)
    t0 = time.monotonic()
    run(["cat", *files * 150])
    took = time.monotonic() - t0
    woken = record_writer_switches(mount.proc.pid) - before
    # a round a second and one wake in each pause, with room to spare
    assert woken <= 4 + 2 * took, f"woken {woken} times in {took:.2f} s for 300 reads"
    mount.stop()  # the records are written all the same
    mount.start()
    for ks in ("web", "db"):
        assert re.search(r"backed up \S+ by cat \(uid 0\)", status_line(mount, ks))


def test_change_warns_and_a_restart_keeps_the_times(mount, build, store, tmp_path):
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), os.path.join(mount.export, "db.pem"),
         str(tmp_path)])
    code, line = check(build, mount, "--warn", "0s", "--never", "crit")
    assert code == OK, line
    assert "2 backed up" in line and "| keysets=2 backed_up=2" in line

    with open(os.path.join(store, "web", "extra.key"), "w") as f:
        f.write("new key material\n")
    code, line = check(build, mount, "--warn", "0s")
    assert code == WARNING, line
    assert "web" in line.split("|")[0] and "db" not in line.split("|")[0], line
    assert "changed since last backup" in status_line(mount, "web")
    code, line = check(build, mount, "--warn", "1h", "--crit", "2h")
    assert code == OK, line

    before = metrics(build, mount)
    times = {(n, ks): sample(before, n, keyset=ks)
             for n in ("keyfs_keyset_changed_timestamp_seconds",
                       "keyfs_keyset_backup_timestamp_seconds")
             for ks in ("web", "db")}
    assert all(v and v > 0 for v in times.values()), times
    mount.stop()
    time.sleep(1.1)  # a time taken anew would differ
    mount.start()
    mount.unlock()
    after = metrics(build, mount)
    for (n, ks), v in times.items():
        assert sample(after, n, keyset=ks) == v, (n, ks, before, after)
    assert "changed since last backup" in status_line(mount, "web")
    assert "backed up" in status_line(mount, "db")
    code, line = check(build, mount, "--warn", "0s")
    assert code == WARNING and "web" in line, line


def journal(store):
    """STATE/fresh.log: its first line, and the record line of each keyset
    (the last one wins)."""
    with open(os.path.join(store, ".keyfs", "fresh.log")) as f:
        head, *lines = f.read().splitlines()
    return head, {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines}


def backed_up_after_restart(mount, build, expect):
    mount.stop()
    mount.start()
    mount.unlock()
    text = metrics(build, mount)
    for ks, state in expect.items():
        assert sample(text, "keyfs_keyset_backup_state", keyset=ks, state=state) == 1, (ks, text)


def test_records_are_kept_in_one_journal(mount, build, store, tmp_path):
    """Backup records go to STATE/fresh.log, a line per change, not a file
    per keyset; a clean stop writes it again with a line per keyset."""
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), str(tmp_path)])
    state = os.path.join(store, ".keyfs")
    assert wait_for(lambda: "cp" in journal(store)[1].get("web", "")), journal(store)
    assert "never backed up" in status_line(mount, "db")  # db's record made too
    mount.stop()
    head, recs = journal(store)
    assert head.startswith("keyfs-fresh-log 1 ") and head.endswith(" 2"), head
    assert set(recs) == {"web", "db"}
    with open(os.path.join(state, "fresh.log")) as f:
        assert len(f.read().splitlines()) == 3, "one line per keyset after a clean stop"
    assert os.listdir(os.path.join(state, "fresh")) == []
    assert not os.path.exists(os.path.join(state, "fresh.all"))
    mount.start()
    backed_up_after_restart(mount, build, {"web": "backed_up", "db": "never"})


def test_a_torn_journal_keeps_what_comes_before_and_what_comes_after(mount, build, store, tmp_path):
    """A crash may tear the journal's last line: the records before it
    are read, the journal is written again whole, and what is recorded
    after the restart lasts (no line goes after the torn one)."""
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), str(tmp_path)])
    mount.stop()
    log = os.path.join(store, ".keyfs", "fresh.log")
    with open(log, "a") as f:
        f.write("db keyfs-fresh 1 0123456789")
    mount.start()
    mount.unlock()
    assert "fresh.log ends early" in mount.logtext()
    assert wait_for(lambda: "keyfs-fresh 1 0123456789" not in open(log).read()), "not written again"
    assert "backed up" in status_line(mount, "web")
    run(["cp", os.path.join(mount.export, "db.pem"), str(tmp_path)])
    assert wait_for(lambda: "cp" in journal(store)[1].get("db", "")), journal(store)
    mount.proc.kill()  # no clean stop: the appended line is what is left
    mount.proc.wait()
    mount.logf.close()
    mount.proc = None
    run(["fusermount3", "-u", "-z", mount.path], check=False)
    mount.start()
    mount.unlock()
    text = metrics(build, mount)
    for ks in ("web", "db"):
        assert sample(text, "keyfs_keyset_backup_state", keyset=ks, state="backed_up") == 1, text


def test_records_of_a_file_per_keyset_are_read_into_the_journal(mount, build, store, tmp_path):
    """A state directory of a release that kept a file per record in
    STATE/fresh/ (and all of them in fresh.all): read once, then kept in
    the journal. A record file changed after the journal was written (by
    such a release again) makes the files count, not the journal."""
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), os.path.join(mount.export, "db.pem"),
         str(tmp_path)])
    mount.stop()
    state = os.path.join(store, ".keyfs")
    recs = journal(store)[1]
    os.unlink(os.path.join(state, "fresh.log"))
    # a clean stop of such a release: every record in fresh.all, with the
    # times of fresh/ then
    st = os.stat(os.path.join(state, "fresh"))
    times = " ".join(f"{ns // 10**9}.{ns % 10**9:09d}" for ns in (st.st_mtime_ns, st.st_ctime_ns))
    with open(os.path.join(state, "fresh.all"), "w") as f:
        f.write(f"keyfs-fresh-all 1 {times} 2\n")
        f.write("".join(f"{ks} {recs[ks]}\n" for ks in sorted(recs)) + "end 2\n")
    mount.start()
    backed_up_after_restart(mount, build, {"web": "backed_up", "db": "backed_up"})
    assert set(journal(store)[1]) == {"web", "db"}
    assert not os.path.exists(os.path.join(state, "fresh.all")), "read again next time"
    # the file per keyset such a release writes
    mount.stop()
    for ks, line in recs.items():
        with open(os.path.join(state, "fresh", ks), "w") as f:
            f.write(line + "\n")
    os.unlink(os.path.join(state, "fresh.log"))
    mount.start()
    backed_up_after_restart(mount, build, {"web": "backed_up", "db": "backed_up"})
    assert set(journal(store)[1]) == {"web", "db"}
    mount.stop()
    os.unlink(os.path.join(state, "fresh", "db"))  # db's record, gone
    mount.start()
    backed_up_after_restart(mount, build, {"web": "backed_up", "db": "never"})


def test_same_content_rewritten_while_stopped_keeps_the_times(mount, build, store, tmp_path):
    """Files written again with the same bytes (restored, moved to another
    disk) while keyfs is stopped get a new version stamp: the export, its
    seal and the backup of it stay, and nothing counts as changed."""
    mount.unlock()
    first = tmp_path / "first"
    first.mkdir()
    run(["cp", os.path.join(mount.export, "web.pem"), str(first)])
    before = metrics(build, mount)
    names = ("keyfs_keyset_changed_timestamp_seconds", "keyfs_keyset_sealed_timestamp_seconds",
             "keyfs_keyset_backup_timestamp_seconds")
    times = {n: sample(before, n, keyset="web") for n in names}
    assert all(v and v > 0 for v in times.values()), times
    mount.stop()
    key = os.path.join(store, "web", "ed25519.key")
    with open(key, "rb") as f:
        data = f.read()
    time.sleep(1.1)  # a time taken anew would differ
    with open(key, "wb") as f:
        f.write(data)
    mount.start()
    mount.unlock()
    after = metrics(build, mount)
    for n, v in times.items():
        assert sample(after, n, keyset="web") == v, (n, before, after)
    assert sample(after, "keyfs_keyset_backup_state", keyset="web", state="backed_up") == 1
    second = tmp_path / "second"
    second.mkdir()
    run(["cp", os.path.join(mount.export, "web.pem"), str(second)])
    assert (first / "web.pem").read_bytes() == (second / "web.pem").read_bytes()


def test_new_password_means_not_yet_backed_up(mount, build, tmp_path):
    mount.unlock()
    run(["cp", os.path.join(mount.export, "web.pem"), str(tmp_path)])
    assert "backed up" in status_line(mount, "web")
    assert mount.control("password Another-Horse-8") == 0
    assert "changed since last backup" in status_line(mount, "web")
    run(["cp", os.path.join(mount.export, "web.pem"), str(tmp_path)])
    assert re.search(r"; backed up .* by cp", status_line(mount, "web"))


def test_every_exit_code_of_check(mount, build, store, tmp_path):
    # UNKNOWN: not a keyfs mount, no such path, a bad option
    res = keyfsctl(build, "-m", "/proc", "check")
    assert res.returncode == UNKNOWN and res.stdout.startswith("KEYFS UNKNOWN - "), res.stdout
    res = keyfsctl(build, "-m", str(tmp_path / "nowhere"), "check")
    assert res.returncode == UNKNOWN, res.stdout
    res = keyfsctl(build, "-m", mount.path, "check", "--warn", "soon")
    assert res.returncode == UNKNOWN, res.stdout
    res = keyfsctl(build, "--no-such-option", "-m", mount.path, "check")
    assert res.returncode == UNKNOWN and res.stdout.startswith("KEYFS UNKNOWN - "), res.stdout
    # CRITICAL: a directory keyfs is not mounted on
    empty = tmp_path / "empty"
    empty.mkdir()
    res = keyfsctl(build, "-m", str(empty), "check")
    assert res.returncode == CRITICAL and "not mounted" in res.stdout, res.stdout

    # never backed up: as --never says
    # locked: never backed up and no password to seal with, unless ignored
    code, line = check(build, mount, "--never", "warn")
    assert code == CRITICAL and "locked" in line, line
    assert check(build, mount, "--never", "ok")[0] == OK
    mount.unlock()
    assert check(build, mount, "--never", "ok")[0] == OK
    code, line = check(build, mount, "--never", "warn")
    assert code == WARNING and "web" in line and "db" in line, line
    assert check(build, mount, "--never", "crit")[0] == CRITICAL
    run(["cp", os.path.join(mount.export, "web.pem"), os.path.join(mount.export, "db.pem"),
         str(tmp_path)])
    assert check(build, mount, "--never", "crit", "--warn", "0s")[0] == OK
    # CRITICAL past --crit
    with open(os.path.join(store, "db", "more.key"), "w") as f:
        f.write("x\n")
    code, line = check(build, mount, "--warn", "0s", "--crit", "0s")
    assert code == CRITICAL and "db" in line, line
    # CRITICAL: locked (no password) with changes pending
    assert mount.control("forget") == 0
    code, line = check(build, mount, "--warn", "1d", "--crit", "2d")
    assert code == CRITICAL and "locked" in line, line


def test_sealing_failure_is_critical(mount, build, store):
    mount.stop()
    # a directory where the sealed file must go: the rename fails
    os.makedirs(os.path.join(store, ".keyfs", "cache", "web", "in-the-way"))
    mount.start()
    mount.unlock()
    code, line = wait_for(lambda: (r := check(build, mount, "--never", "ok"))[0] == CRITICAL and r)
    assert code == CRITICAL and "sealing failed" in line and "web" in line, line
    assert "SEALING FAILED" in status_line(mount, "web")


def test_metrics_file(keyfs_bin, build, tmp_path, store):
    tool = promtool()
    outdir = tmp_path / "textfile"
    outdir.mkdir()
    prom = outdir / "keyfs.prom"
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start(opts=f"work_factor=10,metrics_file={prom}")
    try:
        assert wait_for(lambda: prom.exists()), "metrics file not written"
        assert stat.S_IMODE(os.stat(prom).st_mode) == 0o644
        m.unlock()
        assert wait_for(lambda: sample(prom.read_text(), "keyfs_locked") == 0)

        seen, stop = [], threading.Event()

        def reader():
            while not stop.is_set():
                with open(prom) as f:
                    seen.append(f.read())

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(6):
                run(["cp", os.path.join(m.export, "web.pem"), str(tmp_path)])
                with open(os.path.join(store, "db", f"k{i}.key"), "w") as f:
                    f.write(f"{i}\n")
                os.stat(os.path.join(m.export, "db.pem"))
                time.sleep(0.4)
        finally:
            stop.set()
            t.join()
        assert len(set(seen)) > 1, "the file never changed"
        for text in seen:  # never a part of a file
            assert text.endswith("\n") and text.startswith("# HELP keyfs_keysets "), text[-200:]
            lines = text.splitlines()
            assert lines[-1].startswith("keyfs_metrics_rendered_timestamp_seconds "), lines[-1]
            assert 'keyfs_imports_total{kind="verify",outcome="unauthenticated"}' in lines[-4]

        time.sleep(2.5)  # settled: the file and keyfsctl metrics agree
        text = prom.read_text()
        assert abs(sample(text, "keyfs_metrics_rendered_timestamp_seconds") - time.time()) < 60
        # the file's rendered time (its last 3 lines) is the one line more
        assert "".join(text.splitlines(True)[:-3]) == metrics(build, m)
        res = run([tool, "check", "metrics"], input=text, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert sample(text, "keyfs_keyset_backup_state", keyset="web", state="backed_up") == 1
        assert sample(text, "keyfs_keyset_backup_state", keyset="db", state="never") == 1
        assert sample(text, "keyfs_seal_duration_seconds_count") >= 2
        assert sample(text, "keyfs_imports_total", kind="import", outcome="ok") == 0

        # no secret: neither the password nor any key byte
        assert PASSWORD not in text
        for ks in ("web", "db"):
            for name in os.listdir(os.path.join(store, ks)):
                with open(os.path.join(store, ks, name), "rb") as f:
                    data = f.read()
                for chunk in (data[i:i + 16] for i in range(0, len(data) - 15, 16)):
                    assert chunk not in text.encode(), (ks, name)
                assert data.hex()[:32] not in text
        assert PASSWORD not in m.status()
    finally:
        m.kill()
    # stopped cleanly above by kill: the file stays for the collector
    assert prom.exists()


def test_totals_only(keyfs_bin, build, tmp_path, store):
    """metrics.per_keyset = no: no series per keyset, and check still
    decides (label escaping is tests/unit/test_metrics.c's: keyset names
    here cannot hold a quote or a backslash)."""
    tool = promtool()
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        conf = tmp_path / "keyfs.ini"
        conf.write_text("[metrics]\nper_keyset = no\n")
        m.start("-c", str(conf))
        m.unlock()
        text = metrics(build, m)
        assert "keyset=" not in text, text
        assert sample(text, "keyfs_keysets", state="never") >= 2
        res = run([tool, "check", "metrics"], input=text, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        code, line = check(build, m, "--never", "warn")
        assert code == WARNING and "never backed up" in line, line
        m.stop()
    finally:
        m.kill()
