#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The rdinit shim as PID 1: the real static build (target/x86_64-unknown-linux-musl/release/
# vfio-early-init) started as the first process of a new PID and mount namespace, chrooted into
# a scratch image tree (static busybox as its /init), with a stand-in binder that records what
# it saw (or is missing, dies on a signal, never ends). Each case checks the image's init ran
# as PID 1 with the shim's arguments and environment, the mounts the shim made are gone and a
# mount it did not make stays, and the shim's kernel-log line (read back with dmesg: these
# records land in this machine's kernel log). The boots under QEMU are tests/generators' rows
# its-shim*. Root only. Ends with "N passed, M failed".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
shim=$repo/target/x86_64-unknown-linux-musl/release/vfio-early-init
passed=0 failed=0
fail() { failed=$((failed + 1)); printf 'FAIL %-26s %s\n' "$1" "$2"; }
pass() { passed=$((passed + 1)); printf 'PASS %-26s %s\n' "$1" "$2"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
[ "$(id -u)" -eq 0 ] || { fail setup "must run as root (namespaces, chroot, dmesg)"; finish; }
[ -x "$shim" ] || { fail setup "$shim missing: run make"; finish; }
bb=$(command -v busybox) || { fail setup "busybox not found (busybox-static)"; finish; }
readelf -lW "$bb" | grep -q INTERP && { fail setup "$bb is dynamic: the tree needs busybox-static"; finish; }
for c in unshare chroot dmesg; do command -v "$c" >/dev/null || { fail setup "$c not found"; finish; }; done
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# tree NAME: a fresh image tree: the shim, busybox, an /init that records what it sees.
tree() {
    local r=$t/$1
    mkdir -p "$r/usr/lib/vfio-early" "$r/bin" "$r/etc"
    cp "$shim" "$r/usr/lib/vfio-early/init"
    cp "$bb" "$r/bin/busybox"
    cat >"$r/init" <<'INIT'
#!/bin/busybox sh
{
    echo "ARGV0 $0"
    echo "ARGS $*"
    echo "ENV ${VFIOTEST:-unset}"
    echo "PID $$"
    # (no 2>/dev/null: with the shim's /dev gone, that would create a file there)
    for d in proc sys dev; do echo "EMPTY-$d $(/bin/busybox ls -A /$d | /bin/busybox wc -l)"; done
} >/init.out
INIT
    chmod 755 "$r/init"
    printf '%s\n' "$r"
}
# binder ROOT PATH BODY: a stand-in binder at PATH running BODY after recording its arguments,
# what is mounted and its descriptors.
binder() {
    mkdir -p "$(dirname "$1/$2")"
    cat >"$1/$2" <<B
#!/bin/busybox sh
echo "\$0 \$*" >/binder.out
[ -d /sys/bus ] && [ -e /proc/1/exe ] && [ -c /dev/kmsg ] && echo "MOUNTED" >>/binder.out
fd1=\$(/bin/busybox readlink /proc/\$\$/fd/1); echo "\$fd1" >>/binder.out
$3
B
    chmod 755 "$1/$2"
}
# boot ROOT [ARGS...]: the shim as PID 1 in ROOT; the kernel-log records it added on stdout.
boot() {
    local r=$1 n
    shift
    n=$(dmesg | wc -l)
    # A shim that never execs the init fails here instead of hanging the suite.
    VFIOTEST=kept timeout -s KILL 60 unshare --kill-child --pid --fork --mount --propagation private chroot "$r" /usr/lib/vfio-early/init "$@" >"$r.stdout" 2>&1
    echo $? >"$r.rc"
    dmesg | tail -n +"$((n + 1))" | grep -o 'vfio-early: shim: .*' >"$r.log"
}
# boot_cmdline ROOT LINE: as boot, with LINE as the kernel command line the shim reads: /proc is
# mounted before it (it keeps a mount it did not make) with LINE bound over /proc/cmdline.
boot_cmdline() {
    local r=$1 n
    printf '%s\n' "$2" >"$r.cmdline"
    mkdir -p "$r/proc"
    n=$(dmesg | wc -l)
    VFIOTEST=kept timeout -s KILL 60 unshare --kill-child --pid --fork --mount --propagation private \
        sh -c 'mount -t proc proc "$1/proc" && mount --bind "$1.cmdline" "$1/proc/cmdline" && exec chroot "$1" /usr/lib/vfio-early/init' sh "$r" >"$r.stdout" 2>&1
    echo $? >"$r.rc"
    dmesg | tail -n +"$((n + 1))" | grep -o 'vfio-early: shim: .*' >"$r.log"
}
has() { grep -qF -- "$2" "$1"; }

# 1. The binder ran with "bind", saw /dev, /proc and /sys, wrote to no terminal; the init got
#    argv[0], the arguments, the environment, PID 1 and none of the shim's mounts.
r=$(tree pass)
binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
boot "$r" one "two words"
why=""
has "$r/binder.out" "/usr/lib/vfio-early/vfio-early-boot bind" || why+="binder not run with bind; "
has "$r/binder.out" MOUNTED || why+="the binder did not see /sys, /proc/1/exe and /dev/kmsg; "
has "$r/binder.out" memfd: || why+="the binder's stdout is $(sed -n 3p "$r/binder.out"), not the shim's sink; "
for l in "ARGV0 /init" "ARGS one two words" "ENV kept" "PID 1" "EMPTY-proc 0" "EMPTY-sys 0" "EMPTY-dev 0"; do
    grep -qxF "$l" "$r/init.out" 2>/dev/null || why+="init: no \"$l\" ($(tr '\n' '|' <"$r/init.out" 2>/dev/null)); "
done
has "$r.log" "the binder /usr/lib/vfio-early/vfio-early-boot ended after" || why+="log: $(cat "$r.log"); "
[ -s "$r.stdout" ] && why+="the shim wrote to its stdout: $(head -c 200 "$r.stdout"); "
[ -d "$r/run" ] || why+="no /run for the binder's state; "
[ -z "$why" ] && pass passthrough "argv, environment, PID 1, mounts gone: $(cat "$r.log")" || fail passthrough "$why"

# 2. Which binder: the image's own (its hook) before the add-on's before the packaged one.
r=$(tree order)
binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
binder "$r" usr/lib/vfio-early/addon/vfio-early "exit 0"
binder "$r" usr/bin/vfio-early "exit 0"
boot "$r"
has "$r/binder.out" "/usr/bin/vfio-early bind" && pass binder-order "$(head -n 1 "$r/binder.out")" ||
    fail binder-order "ran $(head -n 1 "$r/binder.out" 2>/dev/null)"

# 3-5. No binder, one that dies on a signal, one that never ends (it tells the shim a 1 s
#      deadline, as the real binder tells its timeout: killed 2 s past it): the init runs every
#      time, and the log says what happened.
r=$(tree missing)
boot "$r"
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.log" "no binder in this image" &&
    pass binder-missing "$(cut -c1-100 "$r.log")" || fail binder-missing "init ran: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree signal)
binder "$r" usr/lib/vfio-early/vfio-early-boot 'kill -SEGV $$'
boot "$r"
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.log" "ended with signal: 11" &&
    pass binder-signal "$(cut -c1-100 "$r.log")" || fail binder-signal "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree hang)
binder "$r" usr/lib/vfio-early/vfio-early-boot 'echo $$ >/binder.pid; echo 1000 >&3; exec /bin/busybox sleep 600'
boot "$r"
pid=$(cat "$r/binder.pid" 2>/dev/null)
why=""
grep -qxF "PID 1" "$r/init.out" 2>/dev/null || why+="the init did not run; "
has "$r.log" "still running 2000 ms after its 1 s deadline (as it told): killed" || why+="log: $(cat "$r.log"); "
[ -n "$pid" ] || why+="the stand-in never started; "
[ -z "$why" ] && pass binder-hang "$(cut -c1-110 "$r.log")" || fail binder-hang "$why"

# 6-8. The init: a missing or non-executable /init falls back to the kernel's list, each
#      failure said; with none at all the shim exits 1 (PID 1 ending: the kernel panics, as it
#      would itself with no init).
r=$(tree noinit)
mkdir -p "$r/sbin" && mv "$r/init" "$r/sbin/init"
boot "$r" x
grep -qxF "ARGV0 /sbin/init" "$r/init.out" 2>/dev/null && has "$r.log" "cannot start /init: No such file or directory" &&
    pass init-fallback "$(grep -F 'cannot start' "$r.log" | head -n 1)" || fail init-fallback "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree noexec)
chmod 644 "$r/init"
cp "$r/init" "$r/bin/sh" && chmod 755 "$r/bin/sh"
boot "$r"
grep -qxF "ARGV0 /bin/sh" "$r/init.out" 2>/dev/null && has "$r.log" "cannot start /init: Permission denied" &&
    pass init-noexec "$(grep -F 'cannot start /init' "$r.log")" || fail init-noexec "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree none)
rm "$r/init"
boot "$r"
[ "$(cat "$r.rc")" = 1 ] && has "$r.log" "no init could be started (tried /init, /sbin/init, /etc/init, /bin/init, /bin/sh)" &&
    pass no-init "exit 1: $(tail -n 1 "$r.log" | cut -c1-90)" || fail no-init "rc $(cat "$r.rc"); log: $(cat "$r.log")"

# 9. A mount the shim did not make stays for the init.
r=$(tree premounted)
binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
mkdir -p "$r/proc"
timeout -s KILL 60 unshare --kill-child --pid --fork --mount --propagation private --mount-proc="$r/proc" chroot "$r" /usr/lib/vfio-early/init >"$r.stdout" 2>&1
if grep -qxF "EMPTY-sys 0" "$r/init.out" 2>/dev/null && ! grep -qxF "EMPTY-proc 0" "$r/init.out"; then
    pass premounted "a /proc mounted before it stays; its own /sys is gone"
else
    fail premounted "$(tr '\n' '|' <"$r/init.out" 2>/dev/null)"
fi

# 11-16. Which init is the shim is decided by the file, never by its name (issue 23): an /init
#      that is a symlink to the shim, and the shim named through "//", ".." or a symlink in
#      vfio-early.init=, are skipped (the next init runs, once: no loop); a name beside the
#      shim's (init.real) is an init like any other.
r=$(tree selflink)
binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
mkdir -p "$r/sbin" && mv "$r/init" "$r/sbin/init" && ln -s usr/lib/vfio-early/init "$r/init"
boot "$r"
runs=$(grep -c . "$r/binder.out" 2>/dev/null)
grep -qxF "ARGV0 /sbin/init" "$r/init.out" 2>/dev/null && has "$r.log" "/init is this shim itself (the same file): skipped" && has "$r.log" "; starting /sbin/init" &&
    [ "$(grep -c 'ended after' "$r.log")" = 1 ] &&
    pass init-symlink-to-shim "$(grep -F 'skipped' "$r.log")" || fail init-symlink-to-shim "rc $(cat "$r.rc"); init: $(cat "$r/init.out" 2>/dev/null); log: $(head -c 600 "$r.log"); binder lines $runs"
for named in //usr/lib/vfio-early/init /usr/lib/../lib/vfio-early/init /sbin/realinit; do
    r=$(tree "named$(echo "$named" | tr -c 'a-z' '_')")
    binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
    mkdir -p "$r/sbin" && ln -s /usr/lib/vfio-early/init "$r/sbin/realinit"
    boot_cmdline "$r" "rdinit=/usr/lib/vfio-early/init vfio-early.init=$named"
    grep -qxF "ARGV0 /init" "$r/init.out" 2>/dev/null && has "$r.log" "$named is this shim itself" &&
        [ "$(grep -c 'ended after' "$r.log")" = 1 ] &&
        pass "init=$named" "skipped, /init ran once" || fail "init=$named" "rc $(cat "$r.rc"); init: $(cat "$r/init.out" 2>/dev/null); log: $(head -c 600 "$r.log")"
done
r=$(tree initreal)
binder "$r" usr/lib/vfio-early/vfio-early-boot "exit 0"
cp "$r/init" "$r/usr/lib/vfio-early/init.real"
boot_cmdline "$r" "vfio-early.init=/usr/lib/vfio-early/init.real"
grep -qxF "ARGV0 /usr/lib/vfio-early/init.real" "$r/init.out" 2>/dev/null && has "$r.log" "starting /usr/lib/vfio-early/init.real" &&
    pass init.real "a name beside the shim's starts" || fail init.real "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"

# 17-18. The deadline comes from the binder, never from a file PID 1 parses: one that tells
#      nothing is killed at the default 10 s plus the 2 s grace; one that tells a huge one is
#      capped (600 s; here it ends by itself after a second) and the init follows at once.
r=$(tree untold)
binder "$r" usr/lib/vfio-early/vfio-early-boot 'exec /bin/busybox sleep 600'
echo "timeout = 1" >"$r/etc/vfio-early.conf"
boot "$r"
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.log" "still running 2000 ms after its 10 s deadline (the default: it told none; a binder older than the shim tells none, so rebuild the image or the add-on): killed" &&
    pass deadline-untold "$(cut -c1-120 "$r.log")" || fail deadline-untold "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree huge)
binder "$r" usr/lib/vfio-early/vfio-early-boot 'echo 4000000000 >&3; /bin/busybox sleep 1'
boot "$r"
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.log" "ended after" && ! has "$r.log" "told its deadline as" &&
    pass deadline-huge "$(cut -c1-120 "$r.log")" || fail deadline-huge "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"
r=$(tree garbage)
binder "$r" usr/lib/vfio-early/vfio-early-boot 'printf "soon" >&3; exit 0'
boot "$r"
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.log" "told its deadline as something that is no whole line: waited the default 10 s" &&
    pass deadline-garbage "$(head -n 1 "$r.log" | cut -c1-120)" || fail deadline-garbage "init: $(cat "$r/init.out" 2>/dev/null); log: $(cat "$r.log")"

# 20. No /dev/kmsg (an empty /dev mounted before the shim: it logs to stderr, and no kmsg
#     descriptor holds number 3, so its sink for the binder's output may be 3 itself): the
#     binder's output still goes to the sink and its deadline line to the pipe, however much it
#     writes first.
r=$(tree nokmsg)
binder "$r" usr/lib/vfio-early/vfio-early-boot '/bin/busybox yes vfio | /bin/busybox head -c 200000 >&2; /bin/busybox yes | /bin/busybox head -c 200000; echo 1000 >&3; exit 0'
mkdir -p "$r/dev"
timeout -s KILL 60 unshare --kill-child --pid --fork --mount --propagation private \
    sh -c 'mount -t tmpfs none "$1/dev" && exec chroot "$1" /usr/lib/vfio-early/init' sh "$r" >"$r.stdout" 2>&1
grep -qxF "PID 1" "$r/init.out" 2>/dev/null && has "$r.stdout" "vfio-early: shim: the binder /usr/lib/vfio-early/vfio-early-boot ended after" &&
    ! has "$r.stdout" "told its deadline as" && ! grep -q '^vfio$' "$r.stdout" &&
    pass no-kmsg "$(grep -o 'vfio-early: shim: the binder.*' "$r.stdout" | cut -c1-100)" || fail no-kmsg "init: $(cat "$r/init.out" 2>/dev/null); stdout: $(head -c 400 "$r.stdout")"

# 10. Not PID 1 (by hand on a running system): it says what it is and touches nothing.
r=$(tree byhand)
chroot "$r" /usr/lib/vfio-early/init >"$r.stdout" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q 'not PID 1: nothing done' "$r.stdout" && [ ! -e "$r/proc" ] && [ ! -e "$r/init.out" ] &&
    pass not-pid1 "exit 2, \"$(tail -n 1 "$r.stdout")\"" || fail not-pid1 "rc $rc, $(tail -n 2 "$r.stdout"); proc: $(ls -d "$r/proc" 2>&1)"
finish
