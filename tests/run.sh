#!/usr/bin/env bash
# `make test`: build, unit tests, the same under ASan+UBSan, a short fuzz
# run, integration tests against real peers; then one closing line
# "N passed, N failed, N skipped" over all of them (a skip is never a pass).
# Exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

rm -f build/tests/unit/result build/san/tests/unit/result \
	build/tests/integration/result build/san/tests/integration/result \
	build/fuzz-result build/tests/ui/result build/tests/layout/result
status=0
step() {
	echo
	echo "==== $1"
	shift
	"$@" || status=1
}

step "layout: no part includes another part's header" python3 tests/layout/check.py \
	--result build/tests/layout/result
step "build" make -s all || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
step "unit tests" make -s test-unit
step "unit and integration tests, ASan+UBSan" make -s test-san
step "fuzz (${FUZZ_SECONDS}s per target)" sh -c \
	"tests/fuzz/run.sh $FUZZ_SECONDS && echo '1 0' > build/fuzz-result || echo '0 1' > build/fuzz-result"
step "integration tests" python3 tests/integration/run.py --keel build/keel \
	--result build/tests/integration/result

step "admin UI in headless Chromium (screenshots in build/ui)" node tests/ui/run.js \
	--keel build/keel --out build/ui --result build/tests/ui/result

passed=0 failed=0 skipped=0
echo
echo "==== summary"
for suite in "layout:build/tests/layout/result" "unit:build/tests/unit/result" "unit-san:build/san/tests/unit/result" \
	"integ-san:build/san/tests/integration/result" "fuzz:build/fuzz-result" \
	"integration:build/tests/integration/result" "ui:build/tests/ui/result"; do
	name=${suite%%:*} file=${suite#*:}
	# A result file holds "passed failed" or "passed failed skipped".
	if [ -f "$file" ]; then
		read -r p f s <"$file"
	else
		p=0 f=1		# the suite did not get as far as counting
	fi
	s=${s:-0}
	printf '  %-12s %d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
	# Lines after the first name what failed, so that the tail of a long
	# log still says which test it was.
	[ -f "$file" ] && tail -n +2 "$file" | sed 's/^/      failed: /'
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	s=
done
[ $failed -gt 0 ] && status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
