#!/usr/bin/python3
"""fsck for a keyfs directory keystore (stdlib only).

    tools/fsck.py [--expect FILE.json] [--allow-missing KS[,KS...]]
                  [--allow-tmp] [--report FILE.json] [-q] STORE

Checks, offline (or with a daemon running and idle):
  - every keyset STORE/<k>/ and every version STORE/.keyfs/versions/<k>/<N>/
    holds only flat regular files with valid names ([A-Za-z0-9._-]{1,64},
    not starting with '.', not the reserved KEYSET.ini) of at most 1 MiB,
    and is not empty: what the daemon reads as a keyset;
  - nothing under versions/ but keyset names holding version numbers;
  - leftovers of interrupted writes: anything in .keyfs/tmp/, dot-tmp files
    in .keyfs/cache/ and .keyfs/meta/, .keyfs/verifier.tmp.
    --allow-tmp lists them as notes instead of problems (right after a
    kill -9 they are expected; the next start must clean them);
  - with --expect: JSON {keyset: [{member: sha256hex, ...}, ...]} lists the
    known contents of each keyset. The active keys and every stored version
    must each be exactly one of them ("an old or a new version, never torn")
    and each listed keyset must have active keys ("never missing"), except
    those named by --allow-missing.

--report FILE writes what was found: {keyset: {"active": i|null,
"versions": {N: i}}} where i indexes the keyset's --expect list (-1: not a
known content), so a caller can check that no content ever disappears.

Exit status: 0 clean, 1 problems (listed on stdout), 2 usage error.
"""
import argparse
import hashlib
import json
import os
import re
import stat
import sys

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
VERSION_RE = re.compile(r"[1-9][0-9]{0,5}\Z")
MEMBER_MAX = 1 << 20
RESERVED = "KEYSET.ini"


def valid_name(name):
    return bool(NAME_RE.match(name)) and not name.startswith(".")


class Fsck:
    def __init__(self, store, allow_tmp=False):
        self.store = store
        self.allow_tmp = allow_tmp
        self.problems = []
        self.notes = []

    def problem(self, msg):
        self.problems.append(msg)

    def note(self, msg):
        self.notes.append(msg)

    def leftover(self, msg):
        (self.note if self.allow_tmp else self.problem)("leftover: " + msg)

    def rel(self, path):
        return os.path.relpath(path, self.store)

    def read_keyset(self, path):
        """Checks one keyset directory; returns {member: sha256} or None if
        it cannot be read at all."""
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            self.problem(f"{self.rel(path)}: cannot list: {e.strerror}")
            return None
        content = {}
        for name in names:
            p = os.path.join(path, name)
            shown = name if valid_name(name) else repr(name.encode("utf-8", "surrogateescape"))
            try:
                st = os.lstat(p)
            except OSError as e:
                self.problem(f"{self.rel(path)}/{shown}: {e.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = ("directory" if stat.S_ISDIR(st.st_mode) else
                        "symlink" if stat.S_ISLNK(st.st_mode) else "special file")
                self.problem(f"{self.rel(path)}/{shown}: a {kind}, not a flat regular file")
                continue
            if not valid_name(name) or name == RESERVED:
                self.problem(f"{self.rel(path)}/{shown}: invalid member name")
                continue
            if st.st_size > MEMBER_MAX:
                self.problem(f"{self.rel(path)}/{name}: {st.st_size} bytes, over the 1 MiB member limit")
                continue
            try:
                with open(p, "rb") as f:
                    content[name] = hashlib.sha256(f.read()).hexdigest()
            except OSError as e:
                self.problem(f"{self.rel(path)}/{name}: cannot read: {e.strerror}")
        if not names:
            self.problem(f"{self.rel(path)}: empty keyset directory")
        return content

    def scan(self):
        """Returns {keyset: {"active": content|None, "versions": {N: content}}}."""
        found = {}
        if not os.path.isdir(self.store):
            self.problem(f"{self.store}: not a directory")
            return found
        for name in sorted(os.listdir(self.store)):
            if name == ".keyfs":
                continue
            p = os.path.join(self.store, name)
            st = os.lstat(p)
            if not valid_name(name):
                self.note(f"{name!r}: not a keyset name, ignored by keyfs")
                continue
            if not stat.S_ISDIR(st.st_mode):
                self.problem(f"{name}: a keyset name but not a directory (keyfs skips it)")
                continue
            found.setdefault(name, {"active": None, "versions": {}})
            found[name]["active"] = self.read_keyset(p)
        state = os.path.join(self.store, ".keyfs")
        if not os.path.isdir(state):
            return found
        versions = os.path.join(state, "versions")
        if os.path.isdir(versions):
            for ks in sorted(os.listdir(versions)):
                kp = os.path.join(versions, ks)
                if not valid_name(ks) or not os.path.isdir(kp) or os.path.islink(kp):
                    self.problem(f"{self.rel(kp)}: not a keyset's version directory")
                    continue
                entry = found.setdefault(ks, {"active": None, "versions": {}})
                for v in sorted(os.listdir(kp)):
                    vp = os.path.join(kp, v)
                    if re.match(r"^[1-9][0-9]*\.unauthenticated$", v) and os.path.isfile(vp):
                        continue  # the mark of a version no signature vouched for
                    if not VERSION_RE.match(v) or os.path.islink(vp) or not os.path.isdir(vp):
                        self.problem(f"{self.rel(vp)}: not a version directory (stray entry)")
                        continue
                    entry["versions"][int(v)] = self.read_keyset(vp)
        tmp = os.path.join(state, "tmp")
        if os.path.isdir(tmp):
            for name in sorted(os.listdir(tmp)):
                self.leftover(f"{self.rel(os.path.join(tmp, name))} (an interrupted restore)")
        for sub in ("cache", "meta"):
            d = os.path.join(state, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if sub == "cache" and name == ".kept":
                    continue  # seals kept for re-imports: ciphertext, checked by keyfs
                if name.startswith(".") and ".tmp" in name:
                    self.leftover(f"{self.rel(os.path.join(d, name))} (an interrupted write)")
                elif not os.path.isfile(os.path.join(d, name)) or os.path.islink(os.path.join(d, name)):
                    self.problem(f"{self.rel(os.path.join(d, name))}: not a regular file")
        for name in ("verifier.tmp",):
            if os.path.lexists(os.path.join(state, name)):
                self.leftover(f".keyfs/{name} (an interrupted verifier write)")
        return found

    def expect(self, found, known, allow_missing=()):
        """Compares what was found with the known contents; returns the
        report {keyset: {"active": i, "versions": {N: i}}}."""
        report = {}
        for ks, contents in sorted(known.items()):
            entry = found.get(ks, {"active": None, "versions": {}})
            rep = report[ks] = {"active": None, "versions": {}}
            seen = {}

            def index(content, where):
                if content is None:
                    return None
                for i, c in enumerate(contents):
                    if c == content:
                        if i in seen:
                            self.note(f"{ks}: content #{i} is stored twice ({seen[i]} and {where})")
                        seen[i] = where
                        return i
                self.problem(f"{where}: not any known content of {ks} (torn or foreign): "
                             f"members {sorted(content)}")
                return -1

            if entry["active"] is None:
                if ks not in allow_missing:
                    self.problem(f"{ks}: active keys missing")
            else:
                rep["active"] = index(entry["active"], ks)
            for v, content in sorted(entry["versions"].items()):
                rep["versions"][str(v)] = index(content, f".keyfs/versions/{ks}/{v}")
        return report


def main(argv=None):
    ap = argparse.ArgumentParser(description="Checks a keyfs directory keystore.")
    ap.add_argument("store")
    ap.add_argument("--expect", metavar="FILE.json",
                    help="known contents: {keyset: [{member: sha256}, ...]}")
    ap.add_argument("--allow-missing", default="", metavar="KS,...",
                    help="keysets of --expect that may lack active keys")
    ap.add_argument("--allow-tmp", action="store_true",
                    help="report temp leftovers as notes, not problems")
    ap.add_argument("--report", metavar="FILE.json", help="write what was found")
    ap.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    args = ap.parse_args(argv)

    f = Fsck(os.path.abspath(args.store), allow_tmp=args.allow_tmp)
    found = f.scan()
    report = {}
    if args.expect:
        try:
            with open(args.expect) as fh:
                known = json.load(fh)
            assert isinstance(known, dict) and all(
                isinstance(v, list) and all(isinstance(c, dict) for c in v) for v in known.values())
        except (OSError, ValueError, AssertionError) as e:
            print(f"fsck: {args.expect}: not a known-contents file: {e}", file=sys.stderr)
            return 2
        allow = {s for s in args.allow_missing.split(",") if s}
        report = f.expect(found, known, allow)
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=1, sort_keys=True)
    for p in f.problems:
        print(f"PROBLEM: {p}")
    if not args.quiet:
        for n in f.notes:
            print(f"note: {n}")
        nver = sum(len(e["versions"]) for e in found.values())
        print(f"fsck: {args.store}: {len(found)} keysets, {nver} versions, "
              f"{len(f.problems)} problems")
    return 1 if f.problems else 0


if __name__ == "__main__":
    sys.exit(main())
