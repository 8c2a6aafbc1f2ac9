#!/bin/sh
# Boots the s390x guest image and waits for the agent's hello
# (`vmexec image test`), then checks that broken images fail as DESIGN.md
# says: status 125, one line "vmexec: ..." naming the cause, the fix and the
# console log, followed only by indented console lines.
#
# Environment (tests/meson.build): VMEXEC, BUILDDIR. Under CI (CI=true) a test
# that cannot run fails; elsewhere it is skipped (77).
set -u

fail() { echo "FAIL: $*" >&2; exit 1; }
cannot_run() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI, cannot run): $*" >&2
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

: "${VMEXEC:?set VMEXEC to the vmexec executable}"
: "${BUILDDIR:?set BUILDDIR to the build directory}"
command -v qemu-system-s390x >/dev/null 2>&1 ||
  cannot_run "qemu-system-s390x is not installed (apt-get install qemu-system-misc)"
[ -f "$BUILDDIR/agent/vmexec-agent-s390x" ] ||
  cannot_run "no s390x agent was built (apt-get install gcc-s390x-linux-gnu, then reconfigure)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Build (or reuse) the image, boot it, expect the hello line.
"$VMEXEC" image build s390x --quiet >"$tmp/build.out" 2>&1 ||
  { cat "$tmp/build.out" >&2; fail "vmexec image build s390x failed"; }
"$VMEXEC" image test s390x >"$tmp/test.out" 2>"$tmp/test.err"
status=$?
cat "$tmp/test.out"
[ "$status" -eq 0 ] || { cat "$tmp/test.err" >&2; fail "vmexec image test s390x exited with $status"; }
grep -Eq '^s390x: agent hello after [0-9]+\.[0-9]{2} s \(kernel [^ ,]+, machine s390x\)$' "$tmp/test.out" ||
  fail "no hello line in the output of vmexec image test s390x"

# The image just built: images/s390x links to it (image/image-cache.h).
image="${XDG_CACHE_HOME:-$HOME/.cache}/vmexec/images/s390x"
[ -f "$image/kernel" ] && [ -f "$image/initrd" ] || fail "no image at $image"

# A broken image in DIR must fail with 125 and one message line matching RE.
expect_failure() {
  dir=$1 re=$2
  "$VMEXEC" image test --dir "$dir" s390x >"$tmp/bad.out" 2>"$tmp/bad.err"
  status=$?
  cat "$tmp/bad.err"
  [ "$status" -eq 125 ] || fail "broken image $dir: status $status, expected 125"
  [ ! -s "$tmp/bad.out" ] || fail "broken image $dir: unexpected output on stdout"
  head -n 1 "$tmp/bad.err" | grep -Eq "^vmexec: s390x: .*$re.*; console log: /[^ ]+/console.log$" ||
    fail "broken image $dir: the first line does not name the cause ($re) and the console log"
  [ "$(grep -c '^vmexec: ' "$tmp/bad.err")" -eq 1 ] || fail "broken image $dir: more than one message line"
  if tail -n +2 "$tmp/bad.err" | grep -q '^[^ ]'; then
    fail "broken image $dir: lines after the message are not indented"
  fi
  log=$(head -n 1 "$tmp/bad.err" | sed 's/.*; console log: //')
  [ -f "$log" ] || fail "broken image $dir: the console log $log was not kept"
  rm -rf "$(dirname "$log")"
}

# 2. A truncated kernel: qemu cannot start it.
mkdir "$tmp/short-kernel"
head -c 65536 "$image/kernel" >"$tmp/short-kernel/kernel"
cp "$image/initrd" "$tmp/short-kernel/initrd"
expect_failure "$tmp/short-kernel" "before the agent said hello"

# 3. An initramfs without /init: the kernel panics (panic=-1 exits qemu).
mkdir -p "$tmp/no-init/root/etc" "$tmp/no-init/root/dev"
echo "no /init here" >"$tmp/no-init/root/etc/motd"
cp "$image/kernel" "$tmp/no-init/kernel"
(cd "$tmp/no-init/root" && find . | cpio -o -H newc --quiet) >"$tmp/no-init/initrd" ||
  cannot_run "cpio is not installed (apt-get install cpio)"
expect_failure "$tmp/no-init" "Kernel panic"

echo "PASS"
