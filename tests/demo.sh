#!/usr/bin/env bash
# `make demo`: starts four small app servers (two per app, each answering
# with its own id) and keel with its embedded default config in front of
# them, prints where to look, and stops everything on Ctrl-C.
set -eu
keel=${1:-build/keel}
here=$(cd "$(dirname "$0")" && pwd)
pids=()
stop() {
	trap - INT TERM EXIT
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	echo "demo stopped"
}
trap stop INT TERM EXIT

command -v python3 >/dev/null || { echo "demo: python3 is needed for the demo backends" >&2; exit 1; }
for port in 8101 8102 8201 8202; do
	python3 "$here/integration/backend.py" --port "$port" --name "server-$port" >/dev/null 2>&1 &
	pids+=($!)
done
# Wait until the given ports answer (probing, not fixed sleeps).
wait_ports() {
	for _ in $(seq 100); do
		ok=1
		for port in "$@"; do
			(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	echo "demo: ports $* did not open" >&2
	return 1
}

# The app servers first, so keel's first probes find them up.
wait_ports 8101 8102 8201 8202
# The embedded default, with its state (config store, certificate, setup
# token) under build/demo rather than /var/lib/keel: every demo starts fresh.
demo=$(cd "$(dirname "$keel")" && pwd)/demo
rm -rf "$demo"
mkdir -p "$demo"
"$keel" --default-config | sed -e "s|^node: keel|node: keel\nstate_dir: \"$demo/state\"\npid_file: \"$demo/keel.pid\"|" \
	> "$demo/keel.yaml"
"$keel" -c "$demo/keel.yaml" &
pids+=($!)
wait_ports 8000 8443

cat <<TXT

keel $("$keel" --version | head -n 1 | cut -d' ' -f2-) is running in front of four demo app servers.

  app A:    http://127.0.0.1:8000/app_a/   (servers 8101, 8102; round-robin)
  app B:    http://127.0.0.1:8000/app_b/   (servers 8201, 8202; least connections)
  admin UI: https://127.0.0.1:8443/   (self-signed certificate: its fingerprint is in the log above;
            open the setup URL the log shows: .../#/setup?token=...)
  health:   https://127.0.0.1:8443/healthz
  metrics:  https://127.0.0.1:8443/metrics   (routes, servers, monitors)

See the balancing:
  for i in 1 2 3 4; do curl -s http://127.0.0.1:8000/app_a/ | grep -o '"server": "[^"]*"'; done

Stop one app server and watch keel route around it:
  kill \$(pgrep -f 'backend.py --port 8101')

Ctrl-C stops everything.
TXT
wait "${pids[-1]}"
