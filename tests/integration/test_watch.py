"""The store watcher's fallbacks: when the kernel drops events (its queue
overflowed) the store is rescanned and no change is lost; when no inotify
watch can be had (as on NFS, or past fs.inotify.max_user_watches) changes
are found by periodic rescans. Both limits are sysctls of the whole
machine: each test lowers one only while it runs."""
import contextlib
import os
import shutil
import signal

from conftest import Mount, recipients_file, wait_for


@contextlib.contextmanager
def inotify_limit(name, value):
    path = f"/proc/sys/fs/inotify/{name}"
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write(str(value))
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def rewrite(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_lost_events_are_rescanned(build, tmp_path, store):
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        # the queue's size is fixed when keyfs makes its inotify instance
        with inotify_limit("max_queued_events", 16):
            m.start(opts=f"recipients={recipients_file(tmp_path)}")
            db = os.path.join(m.export, "db.pem")
            first = read(db)
            # Stopped, keyfs reads no events: what is done meanwhile is
            # more than the queue holds, and the change to db is among
            # the events the kernel drops.
            m.proc.send_signal(signal.SIGSTOP)
            try:
                for i in range(100):
                    rewrite(os.path.join(store, "web", f".scratch{i}"), b"x")
                    os.unlink(os.path.join(store, "web", f".scratch{i}"))
                rewrite(os.path.join(store, "db", "master.key"), os.urandom(32))
            finally:
                m.proc.send_signal(signal.SIGCONT)
            assert wait_for(lambda: read(db) != first, 5), "the change was lost with the events"
        assert "events were lost; rescanning the store" in m.logtext()
        m.stop()
    finally:
        m.kill()


def test_without_watches_changes_are_found_by_rescans(build, tmp_path, store):
    m = Mount(os.path.join(build, "keyfs"), str(tmp_path), store)
    try:
        # no watch to be had: keyfs must say so and rescan instead
        with inotify_limit("max_user_watches", 1):
            m.start(opts=f"recipients={recipients_file(tmp_path)}")
            assert "looking for changes by rescanning" in m.logtext()
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
