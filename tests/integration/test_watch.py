"""The store watcher's fallbacks: when the kernel drops events (its queue
overflowed) the store is rescanned and no change is lost; when no inotify
watch can be had (as on NFS, or past fs.inotify.max_user_watches) changes
are found by periodic rescans. Both limits are sysctls of the whole
machine: each test lowers one only while it runs, and runs alone
(system_wide): a keyfs of another test started meanwhile would lose
events or find no watch too."""
import contextlib
import glob
import os
import re
import shutil
import signal

import pytest

from conftest import Mount, recipients_file, wait_for


@contextlib.contextmanager
def inotify_limit(name, value):
    path = f"/proc/sys/fs/inotify/{name}"
    # The value before, kept until it is back: a run killed meanwhile
    # (no finally ran) leaves it for the next one to put back.
    saved = f"/run/lock/keyfs-test-inotify-{name}"
    if os.path.exists(saved):
        with open(saved) as f, open(path, "w") as out:
            out.write(f.read().strip())
    with open(path) as f:
        old = f.read().strip()
    with open(saved, "w") as f:
        f.write(old)
    with open(path, "w") as f:
        f.write(str(value))
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)
        os.unlink(saved)


def watched_inodes(pid):
    """The inode numbers process pid watches with inotify (its fdinfo)."""
    found = set()
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            if os.readlink(fd) != "anon_inode:inotify":
                continue
            with open(fd.replace("/fd/", "/fdinfo/")) as f:
                found.update(int(i, 16) for i in re.findall(r"^inotify wd:\S+ ino:([0-9a-f]+) ",
                                                             f.read(), re.M))
        except OSError:
            continue  # closed meanwhile
    return found


def stopped(pid):
    """Whether every thread of pid is stopped (state T): none reads events."""
    states = []
    for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            with open(stat) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return bool(states) and all(s == "T" for s in states)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def rewrite(path, data):
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.system_wide
def test_lost_events_are_rescanned(build, tmp_path, store):
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        # the queue's size is fixed when keyfs makes its inotify instance
        with inotify_limit("max_queued_events", 16):
            m.start(opts=f"recipients={recipients_file(tmp_path)}")
            db = os.path.join(m.export, "db.pem")
            first = read(db)
            # The overflow is certain only if keyfs watches both keysets
            # (it starts watching in the background) and reads no event
            # while 400 of them come, 25 times what its queue holds.
            keysets = {os.stat(os.path.join(store, k)).st_ino for k in ("web", "db")}
            assert wait_for(lambda: keysets <= watched_inodes(m.proc.pid), 10), \
                "keyfs does not watch the keysets"
            m.proc.send_signal(signal.SIGSTOP)
            try:
                assert wait_for(lambda: stopped(m.proc.pid), 10), "keyfs did not stop"
                for i in range(100):  # created, modified, closed, deleted
                    rewrite(os.path.join(store, "web", f".scratch{i}"), b"x")
                    os.unlink(os.path.join(store, "web", f".scratch{i}"))
                # queued after the overflow: the kernel drops its events
                rewrite(os.path.join(store, "db", "master.key"), os.urandom(32))
            finally:
                m.proc.send_signal(signal.SIGCONT)
            # Logged by the watcher once it runs again, maybe after a read
            # of db already saw the change (events were queued: not from
            # memory).
            assert wait_for(lambda: "events were lost; rescanning the store" in m.logtext(), 10), \
                m.logtext()
            assert wait_for(lambda: read(db) != first, 5), "the change was lost with the events"
        m.stop()
    finally:
        m.kill()


@pytest.mark.system_wide
def test_without_watches_changes_are_found_by_rescans(build, tmp_path, store):
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        # no watch to be had: keyfs must say so and rescan instead
        with inotify_limit("max_user_watches", 1):
            m.start(opts=f"recipients={recipients_file(tmp_path)}")
            # said by the watcher's thread once a watch is refused
            assert wait_for(lambda: "looking for changes by rescanning" in m.logtext(), 10), \
                m.logtext()
            db = os.path.join(m.export, "db.pem")
            first = read(db)
            rewrite(os.path.join(store, "db", "master.key"), os.urandom(32))
            # rescans come at least every 5 s on a store this small
            assert wait_for(lambda: read(db) != first, 12), "no rescan found the change"
            # a keyset added is found the same way
            os.mkdir(os.path.join(store, "new"), 0o700)
            rewrite(os.path.join(store, "new", "k.key"), b"new key\n")
            assert wait_for(lambda: os.path.exists(os.path.join(m.export, "new.pem")), 12)
        m.stop()
    finally:
        m.kill()


def test_a_keyset_made_anew_under_its_name_is_watched(build, tmp_path, store):
    """A keyset replaced by another directory of the same name, with rm -r
    and mkdir or with mv, while keyfs reads no events: its watches were on
    the old directory. A same-size rewrite inside the new one, which only
    an event tells, is still seen."""
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        m.start(opts=f"recipients={recipients_file(tmp_path)}")
        db = os.path.join(m.export, "db.pem")
        top = os.path.join(store, "db")
        for how in ("rm -r and mkdir", "mv over"):
            before = read(db)
            m.proc.send_signal(signal.SIGSTOP)
            try:
                if how == "mv over":
                    shutil.copytree(top, top + ".new")
                    rewrite(os.path.join(top + ".new", "master.key"), os.urandom(32))
                    os.rename(top, top + ".old")
                    os.rename(top + ".new", top)
                else:
                    shutil.rmtree(top)
                    os.mkdir(top, 0o700)
                    rewrite(os.path.join(top, "master.key"), os.urandom(32))
                    rewrite(os.path.join(top, "key-id.txt"), b"db-master-new\n")
            finally:
                m.proc.send_signal(signal.SIGCONT)
            assert wait_for(lambda: read(db) != before, 5), f"{how}: the new keyset not seen"
            shutil.rmtree(top + ".old", ignore_errors=True)
            before = read(db)
            rewrite(os.path.join(top, "master.key"), os.urandom(32))
            assert wait_for(lambda: read(db) != before, 2), f"{how}: a change inside it was lost"
        m.stop()
    finally:
        m.kill()
