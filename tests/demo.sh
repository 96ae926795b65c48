#!/usr/bin/env bash
# `make demo`: runs keel in the foreground with the embedded default config
# and says where to look. Ctrl-C stops it.
set -eu
keel=${1:-build/keel}
echo "keel $("$keel" --version | head -n 1 | cut -d' ' -f2-)"
echo "  health:  http://127.0.0.1:8080/healthz"
echo "  config:  $keel --default-config   (the embedded default)"
echo "  stop:    Ctrl-C"
echo
exec "$keel"
