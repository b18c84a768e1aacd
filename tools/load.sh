#!/bin/bash
# Load: parallel readers of export/ and importers into import/ and verify/
# against one keyfs daemon for a bounded time; checks 0 errors, 0
# mismatched bytes, and samples the daemon's RSS each second.
#
#   tools/load.sh [-t SECONDS] [-k KEYFS] [-r READERS] [-i IMPORTERS] [-w WORKDIR] [-K]
#
#   -t  duration in seconds (default 120)
#   -k  the keyfs binary (default build/release/keyfs)
#   -r  readers (default 8): cp, rsync and sha256sum in turn, looping over exports
#   -i  importers (default 4): cp of good exports into import/ and verify/
#   -w  work directory (default: a new one under /tmp)
#   -K  keep the work directory
#
# Neither keysets nor the password change during the run, so every read of
# an export must equal the reference copy taken before the load (imports
# of the keysets' own exports are "identical to the active keys" and
# change nothing). Must run as root (/dev/fuse). Exits 1 on any error,
# mismatch, unclean stop or changed store.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
duration=120 keyfs=$top/build/release/keyfs readers=8 importers=4 work='' keep=0
while getopts t:k:r:i:w:K opt; do
	case $opt in
	t) duration=$OPTARG ;;
	k) keyfs=$OPTARG ;;
	r) readers=$OPTARG ;;
	i) importers=$OPTARG ;;
	w) work=$OPTARG ;;
	K) keep=1 ;;
	*) sed -n '2,17p' "$0"; exit 2 ;;
	esac
done
[ -n "$work" ] || work=$(mktemp -d /tmp/keyfs-load.XXXXXX)
mkdir -p "$work"
store=$work/store mnt=$work/mnt log=$work/keyfs.log ref=$work/ref
password=Correct-Horse-7
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		fusermount3 -u -z "$mnt" 2>/dev/null
		sleep 1
		kill -9 "$pid" 2>/dev/null
	fi
	jobs -p | xargs -r kill 2>/dev/null
}
trap cleanup EXIT

digest() { # the keys and versions of the store, not the seal cache
	(cd "$store" && find . -path ./.keyfs/cache -prune -o -path ./.keyfs/verifier -prune -o -type f -print0 |
		sort -z | xargs -0 sha256sum | sha256sum)
}

"$top/scripts/demo-store" "$store" >/dev/null 2>&1 || { echo "load: demo-store failed"; exit 1; }
mkdir -p "$mnt" "$ref"
"$keyfs" -f -o "store=$store,work_factor=10" "$mnt" >>"$log" 2>&1 &
pid=$!
for _ in $(seq 2000); do
	mountpoint -q "$mnt" && grep -q "notice: mounted" "$log" && break
	kill -0 "$pid" 2>/dev/null || { echo "load: keyfs exited"; cat "$log"; exit 1; }
	sleep 0.01
done
mountpoint -q "$mnt" || { echo "load: keyfs did not mount"; exit 1; }
echo "password $password" >"$mnt/.control" || { echo "load: password refused"; exit 1; }

keysets=$(cd "$mnt/export" && ls *.pem)
# Reference copies once sealing is done: two reads that agree.
for ks in $keysets; do
	cp "$mnt/export/$ks" "$ref/$ks" && cp "$mnt/export/$ks" "$ref/$ks.again" &&
		cmp -s "$ref/$ks" "$ref/$ks.again" || { echo "load: $ks unstable before the load"; exit 1; }
	sha256sum <"$ref/$ks" | cut -d' ' -f1 >"$ref/$ks.sha256"
	rm "$ref/$ks.again"
done
before=$(digest)
mtimes_before=$(stat -c '%n %Y %s' "$mnt"/export/*.pem)
end=$(($(date +%s) + duration))

# A mismatch counts the differing bytes (plus the length difference).
check() { # out-file, copy, keyset
	local got want
	got=$(sha256sum <"$2" | cut -d' ' -f1)
	want=$(cat "$ref/$3.sha256")
	if [ "$got" = "$want" ]; then
		echo ok >>"$1"
	else
		local n s1 s2
		n=$(cmp -l "$2" "$ref/$3" 2>/dev/null | wc -l)
		s1=$(stat -c %s "$2") s2=$(stat -c %s "$ref/$3")
		echo "mismatch $((n + (s1 > s2 ? s1 - s2 : s2 - s1))) $3" >>"$1"
	fi
}

reader() { # number
	local n=$1 out=$work/reader.$1 dir=$work/r$1 tool ks sum
	tool=$(echo cp rsync sha256sum | cut -d' ' -f$((n % 3 + 1)))
	mkdir -p "$dir"
	: >"$out"
	while [ "$(date +%s)" -lt "$end" ]; do
		for ks in $keysets; do
			case $tool in
			cp)
				if cp "$mnt/export/$ks" "$dir/$ks" 2>>"$out.err"; then
					check "$out" "$dir/$ks" "$ks"
				else echo "error cp $ks" >>"$out"; fi ;;
			rsync)
				rm -f "$dir/$ks"
				if rsync --whole-file "$mnt/export/$ks" "$dir/" 2>>"$out.err"; then
					check "$out" "$dir/$ks" "$ks"
				else echo "error rsync $ks" >>"$out"; fi ;;
			sha256sum)
				if sum=$(sha256sum <"$mnt/export/$ks" 2>>"$out.err"); then
					if [ "${sum%% *}" = "$(cat "$ref/$ks.sha256")" ]; then echo ok >>"$out"
					else
						cp "$mnt/export/$ks" "$dir/$ks.bad" 2>/dev/null
						check "$out" "$dir/$ks.bad" "$ks"
					fi
				else echo "error sha256sum $ks" >>"$out"; fi ;;
			esac
		done
	done
	echo "$tool" >"$out.tool"
}

importer() { # number
	local n=$1 out=$work/importer.$1 i=0 ks where
	: >"$out"
	while [ "$(date +%s)" -lt "$end" ]; do
		for ks in $keysets; do
			i=$((i + 1))
			where=import
			[ $((i % 2)) -eq 0 ] && where=verify
			if cp "$ref/$ks" "$mnt/$where/l$n-$i.pem" 2>>"$out.err"; then
				echo "ok $where" >>"$out"
			else
				echo "error $where $ks" >>"$out"
			fi
			rm -f "$mnt/$where/l$n-$i.pem" 2>>"$out.err" || echo "error unlink" >>"$out"
		done
	done
}

sampler() {
	while [ "$(date +%s)" -lt "$end" ]; do
		awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" >>"$work/rss" 2>/dev/null
		sleep 1
	done
}

echo "load: $readers readers, $importers importers, ${duration}s against pid $pid ($keyfs)"
workers=()
for n in $(seq "$readers"); do reader "$n" & workers+=($!); done
for n in $(seq "$importers"); do importer "$n" & workers+=($!); done
sampler & workers+=($!)
wait "${workers[@]}"

alive=yes
kill -0 "$pid" 2>/dev/null || alive=no
after=$(digest)
mtimes_after=$(stat -c '%n %Y %s' "$mnt"/export/*.pem)
for _ in $(seq 100); do
	out=$(fusermount3 -u "$mnt" 2>&1) && break
	case $out in *busy*) sleep 0.1 ;; *) break ;; esac
done
wait "$pid"
rc=$?
pid=

cat "$work"/reader.* >"$work/reads"
cat "$work"/importer.* >"$work/imports"
reads=$(grep -c '^ok' "$work/reads")
read_errors=$(grep -c '^error' "$work/reads")
mismatches=$(grep -c '^mismatch' "$work/reads")
mismatched_bytes=$(awk '/^mismatch/ { s += $2 } END { print s + 0 }' "$work/reads")
imports=$(grep -c '^ok import' "$work/imports")
verifies=$(grep -c '^ok verify' "$work/imports")
import_errors=$(grep -c '^error' "$work/imports")
by_tool=$(for n in $(seq "$readers"); do
	printf '%s %s\n' "$(cat "$work/reader.$n.tool" 2>/dev/null)" "$(grep -c '^ok' "$work/reader.$n")"
done | awk '{ s[$1] += $2 } END { for (t in s) printf "%s %d, ", t, s[t] }')
sanitizer=$(grep -c -e 'ERROR: AddressSanitizer' -e 'runtime error:' -e 'ERROR: LeakSanitizer' "$log")
logged_failures=$(grep -c -e 'import failed' -e 'verify failed' -e 'failed: writing' "$log")

# RSS: min/max overall, max of the first and of the last third.
read -r rss_n rss_min rss_max first_max last_max < <(awk '
	{ v[NR] = $1 }
	END {
		n = NR; if (!n) { print 0, 0, 0, 0, 0; exit }
		min = max = v[1]; t = int(n / 3); if (t < 1) t = 1
		for (i = 1; i <= n; i++) { if (v[i] < min) min = v[i]; if (v[i] > max) max = v[i] }
		f = 0; for (i = 1; i <= t; i++) if (v[i] > f) f = v[i]
		l = 0; for (i = n - t + 1; i <= n; i++) if (v[i] > l) l = v[i]
		print n, min, max, f, l
	}' "$work/rss")
stable=no
[ "$first_max" -gt 0 ] && [ $((last_max * 10)) -le $((first_max * 11)) ] && stable=yes

echo "load results (${duration}s):"
echo "  reads ok: $reads (${by_tool%, }), read errors: $read_errors"
echo "  mismatched reads: $mismatches, mismatched bytes: $mismatched_bytes"
echo "  imports ok: $imports, verifies ok: $verifies, import/verify errors: $import_errors"
echo "  keyfs failures in its log: $logged_failures, sanitizer reports: $sanitizer"
echo "  export mtimes/sizes unchanged: $([ "$mtimes_before" = "$mtimes_after" ] && echo yes || echo no)"
echo "  store unchanged: $([ "$before" = "$after" ] && echo yes || echo no)"
echo "  daemon alive at the end: $alive, exit status after unmount: $rc"
echo "  RSS (kB) over $rss_n samples: min $rss_min, max $rss_max; max of first third $first_max," \
	"of last third $last_max: stable (last <= first + 10%): $stable"

status=0
[ "$read_errors" -eq 0 ] && [ "$mismatches" -eq 0 ] && [ "$import_errors" -eq 0 ] &&
	[ "$logged_failures" -eq 0 ] && [ "$sanitizer" -eq 0 ] && [ "$alive" = yes ] && [ "$rc" -eq 0 ] &&
	[ "$before" = "$after" ] && [ "$mtimes_before" = "$mtimes_after" ] || status=1
if [ $status -ne 0 ]; then
	echo "load: FAILED (work directory kept: $work)"
	head -5 "$work"/*.err 2>/dev/null
	keep=1
else
	echo "load: ok"
fi
[ "$keep" = 1 ] || rm -rf "$work"
exit $status
