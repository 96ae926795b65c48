#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, glibc deps) and runs each
# for SECONDS seconds on its corpus. Crashes land in build/fuzz/ and fail.
set -euo pipefail
seconds=${1:-30}
cd "$(dirname "$0")/../.."
make -s fuzz-build
status=0
for t in build/fuzz/*; do
	[ -x "$t" ] && [ -f "$t" ] || continue
	name=$(basename "$t")
	mkdir -p "build/fuzz-corpus/$name"
	echo "== fuzz: $name for ${seconds}s"
	if ! "$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
		-artifact_prefix="build/fuzz-$name-" -print_final_stats=1 \
		"build/fuzz-corpus/$name" "tests/fuzz/corpus/$name" \
		>"build/fuzz-$name.log" 2>&1; then
		tail -n 40 "build/fuzz-$name.log"
		echo "FAIL fuzz $name (artifacts: build/fuzz-$name-*)"
		status=1
	else
		grep -E '^stat::number_of_executed_units' "build/fuzz-$name.log" || true
	fi
done
exit $status
