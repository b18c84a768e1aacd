"""keyfs-agent is asked off the FUSE request path: with a real mount and a
real keyfs-agent stopped by SIGSTOP (alive, answering nobody), opens of
exports whose password keyfs holds never wait for the agent, opens that
need its answer wait a bounded time side by side (not one after the
other behind a lock), a timeout forgets nothing, and the agent's answer
reaches keyfs once it runs again. An agent that is gone (killed: its
socket refuses) or that says "no" (the passphrase removed) is still
forgotten."""
import errno
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import PASSWORD, Mount, run, wait_for
from test_agent import ADD, OK, REMOVE
from test_review_agent import new_agent  # noqa: F401 (a fixture)

KEYSETS = 8
OPEN_BOUND = 2.0    # seconds for one open while the agent is stopped
TOTAL_BOUND = 2.5   # all of them, in parallel: well below KEYSETS agent timeouts


@pytest.fixture
def names(store):
    """The demo store's two keysets and six more: eight exports to open."""
    for i in range(KEYSETS - 2):
        os.mkdir(os.path.join(store, f"k{i}"), 0o700)
        with open(os.path.join(store, f"k{i}", "secret.key"), "wb") as f:
            f.write(os.urandom(32))
    got = sorted(d for d in os.listdir(store) if not d.startswith("."))
    assert len(got) == KEYSETS
    return got


def mount(keyfs_bin, tmp_path, store, a):
    return Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,agent={a.sock}")


def parallel(jobs):
    """Runs the callables at once, each in a thread; returns
    [(result or exception, seconds)] and the seconds for all."""
    out = [None] * len(jobs)
    gate = threading.Barrier(len(jobs) + 1)

    def one(i):
        gate.wait()
        t0 = time.monotonic()
        try:
            r = jobs[i]()
        except Exception as e:  # reported by the caller
            r = e
        out[i] = (r, time.monotonic() - t0)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(60)
    return out, time.monotonic() - t0


def copy_job(m, tmp_path, name, i):
    """cat for even i, cp for odd: (exit code, bytes copied)."""
    src = os.path.join(m.export, f"{name}.pem")
    if i % 2 == 0:
        res = subprocess.run(["cat", src], capture_output=True)
        return res.returncode, res.stdout
    dst = tmp_path / f"{name}.copy.pem"
    res = subprocess.run(["cp", src, str(dst)], capture_output=True)
    return res.returncode, dst.read_bytes() if res.returncode == 0 else res.stderr


def open_errno(path):
    try:
        with open(path, "rb") as f:
            return 0 if f.read(10) == b"-----BEGIN" else -1
    except OSError as e:
        return e.errno


def read_all(m, names):
    out = {}
    for n in names:
        with open(os.path.join(m.export, f"{n}.pem"), "rb") as f:
            out[n] = f.read()
        assert out[n].startswith(b"-----BEGIN AGE ENCRYPTED FILE-----"), n
    return out


def copies_succeed(m, tmp_path, names, ref, what):
    jobs = [lambda n=n, i=i: copy_job(m, tmp_path, n, i) for i, n in enumerate(names)]
    out, total = parallel(jobs)
    print(f"\n{what}: {len(jobs)} parallel cat/cp: "
          + ", ".join(f"{t:.3f}" for _, t in out) + f" s; all {total:.3f} s")
    for n, (r, t) in zip(names, out):
        assert not isinstance(r, Exception), r
        rc, data = r
        assert rc == 0, f"{n}: {data!r}"
        assert data == ref[n], f"{n}: other bytes than before the agent stopped"
        assert t < OPEN_BOUND, f"{n}: {t:.2f} s with the agent stopped"


def test_known_password_needs_no_agent(keyfs_bin, tmp_path, store, names, new_agent):
    """The agent gave the backup password, then stops: every copy works,
    at once, and keeps working after its requests time out."""
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    m = mount(keyfs_bin, tmp_path, store, a)
    try:
        ref = read_all(m, names)  # sealed, and the password known
        a.proc.send_signal(signal.SIGSTOP)
        try:
            copies_succeed(m, tmp_path, names, ref, "agent just stopped")
            # a round of questions timed out meanwhile: nothing forgotten
            assert wait_for(lambda: "no answer" in m.logtext(), 10), m.logtext()
            copies_succeed(m, tmp_path, names, ref, "after an agent timeout")
            t0 = time.monotonic()
            assert "password: set" in m.status()
            assert time.monotonic() - t0 < OPEN_BOUND
        finally:
            a.proc.send_signal(signal.SIGCONT)
        assert read_all(m, names) == ref
        m.stop()
    finally:
        m.kill()
    log = m.logtext()
    assert "forgotten" not in log, log
    assert PASSWORD not in log
    a.stop()


def stat_and_list(m, stop, times):
    """stat and readdir of export/ until stop is set, timing each pair."""
    while not stop.is_set():
        t0 = time.monotonic()
        os.stat(os.path.join(m.export, "db.pem"))
        assert len(os.listdir(m.export)) == KEYSETS + 1  # and README.txt
        times.append(time.monotonic() - t0)
        time.sleep(0.01)


def test_stopped_agent_fails_fast_then_answers(keyfs_bin, tmp_path, store, names, new_agent):
    """The agent holds the password but is stopped before keyfs starts:
    parallel opens fail with ENOKEY together within a bound (not one
    agent timeout after another), stat and readdir go on, and once the
    agent runs again its password arrives without a restart."""
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    a.proc.send_signal(signal.SIGSTOP)
    try:
        m = mount(keyfs_bin, tmp_path, store, a)
        try:
            stop, times = threading.Event(), []
            lister = threading.Thread(target=stat_and_list, args=(m, stop, times))
            lister.start()
            try:
                jobs = [lambda n=n: open_errno(os.path.join(m.export, f"{n}.pem")) for n in names]
                out, total = parallel(jobs)
            finally:
                stop.set()
                lister.join(30)
            print(f"\nagent stopped, no password: {len(jobs)} parallel opens: "
                  + ", ".join(f"{t:.3f}" for _, t in out) + f" s; all {total:.3f} s; "
                  f"stat+readdir at most {max(times):.3f} s ({len(times)} runs)")
            assert [r for r, _ in out] == [errno.ENOKEY] * KEYSETS
            assert all(t < OPEN_BOUND for _, t in out), out
            assert total < TOTAL_BOUND, f"{total:.2f} s: opens waited one after the other"
            assert times and max(times) < 1.0, times
        finally:
            a.proc.send_signal(signal.SIGCONT)
        t0 = time.monotonic()
        assert wait_for(lambda: open_errno(os.path.join(m.export, "db.pem")) == 0, 10)
        print(f"agent continued: the password arrived in {time.monotonic() - t0:.3f} s")
        read_all(m, names)
        m.stop()
    finally:
        m.kill()
    a.stop()


@pytest.mark.parametrize("how", ["killed", "removed"])
def test_gone_or_no_forgets(keyfs_bin, tmp_path, store, new_agent, how):
    """A refused connection (the agent was killed, its socket left) or an
    explicit "no" (the passphrase removed) forgets what the agent gave."""
    a = new_agent().start()
    assert a.call(ADD, "backup", PASSWORD)[0] == OK
    m = mount(keyfs_bin, tmp_path, store, a)
    db = os.path.join(m.export, "db.pem")
    try:
        assert open_errno(db) == 0
        if how == "killed":
            a.kill()
            assert os.path.exists(a.sock)  # a stale socket: connect is refused
        else:
            assert a.call(REMOVE, "backup")[0] == OK
        # the open that finds out may still use the password it held
        assert wait_for(lambda: open_errno(db) == errno.ENOKEY, 5)
        assert "password: not set" in m.status()
        if how == "removed":
            assert a.call(ADD, "backup", PASSWORD)[0] == OK  # and back: the next open
            assert open_errno(db) == 0
        m.stop()
    finally:
        m.kill()
    if how == "killed":
        assert "the passwords it gave are forgotten" in m.logtext()
    else:
        a.stop()


def test_password_given_later_reaches_the_next_open(keyfs_bin, tmp_path, store, new_agent):
    """An open that needs the agent waits for a fresh answer: a password
    added just before the open is used by that open."""
    a = new_agent().start()
    m = mount(keyfs_bin, tmp_path, store, a)
    db = os.path.join(m.export, "db.pem")
    try:
        assert open_errno(db) == errno.ENOKEY
        assert a.call(ADD, "backup", PASSWORD)[0] == OK
        assert open_errno(db) == 0
        shutil.copyfile(db, tmp_path / "db.copy.pem")
        run(["cmp", db, str(tmp_path / "db.copy.pem")])
        m.stop()
    finally:
        m.kill()
    a.stop()
