#!/usr/bin/env bash
# Runs every unit test program under BUILD/tests/unit (through RUNNER, e.g.
# qemu-aarch64-static) and sums their counts into one closing line, which
# also goes to BUILD/tests/unit/result for tests/run.sh.
set -u
build=$1
runner=${2:-}
passed=0 failed=0
for bin in $(find "$build/tests/unit" -type f -perm -u+x | sort); do
	name=${bin#"$build/tests/unit/"}
	echo "== unit: $name"
	out=$($runner "$bin" 2>&1)
	rc=$?
	echo "$out" | grep -v '^[0-9]* passed, [0-9]* failed$'
	last=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -z "$last" ]; then
		echo "FAIL $name: exited $rc without a summary"
		failed=$((failed + 1))
		continue
	fi
	set -- $last
	passed=$((passed + $1))
	failed=$((failed + $3))
	if [ "$rc" != 0 ] && [ "$3" = 0 ]; then
		echo "FAIL $name: exited $rc"
		failed=$((failed + 1))
	fi
done
echo "$passed $failed" > "$build/tests/unit/result"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
