#!/usr/bin/env bash
# `make soak-redis`: the Redis failover integration tests against the
# ASan+UBSan keel, ROUNDS times in a row (default 20). Any failure or any
# sanitizer report fails the soak. KEEL_LOCK, when set, is a lock file each
# round takes (flock), so a shared machine runs one build or test at a time.
#
#   tests/soak-redis.sh build/san/keel [ROUNDS]
set -u
cd "$(dirname "$0")/.."
keel=$1
rounds=${2:-20}
tests="test_redis.sentinel_failover_kill_9 test_redis.sentinels_partly_down_and_learnt
	test_redis.static_nodes_follow_role"

# A copy, so that a rebuild meanwhile does not change the binary under test.
mkdir -p build/soak
cp "$keel" build/soak/keel || exit 1
lock=()
[ -n "${KEEL_LOCK:-}" ] && lock=(flock "$KEEL_LOCK")

passed=0 failed=0 reports=0 bad_rounds=0
t0=$(date +%s)
for i in $(seq 1 "$rounds"); do
	log=build/soak/round-$i.log
	"${lock[@]}" python3 tests/integration/run.py --keel build/soak/keel --san \
		--result build/soak/result $tests >"$log" 2>&1
	rc=$?
	read -r p f s <build/soak/result 2>/dev/null || { p=0 f=1; }
	f=$((f + ${s:-0}))		# a skipped round tested nothing
	r=$(grep -c '^FAIL .*: sanitizer report' "$log")
	passed=$((passed + p)) failed=$((failed + f)) reports=$((reports + r))
	want=$(echo $tests | wc -w)
	if [ "$rc" != 0 ] || [ "$f" != 0 ] || [ "$r" != 0 ] || [ "$p" != "$want" ]; then
		bad_rounds=$((bad_rounds + 1))
		echo "soak-redis: round $i of $rounds: $p passed, $f failed, $r sanitizer reports (see $log)"
		grep -E '^(FAIL|    )' "$log" | head -40
	else
		echo "soak-redis: round $i of $rounds: $p passed"
		rm -f "$log"
	fi
done
echo "soak-redis: $rounds rounds in $(( $(date +%s) - t0 )) s: $passed passed, $failed failed," \
	"$reports sanitizer reports, $bad_rounds bad rounds"
[ "$failed" = 0 ] && [ "$reports" = 0 ] && [ "$bad_rounds" = 0 ]
