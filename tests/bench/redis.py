"""make bench, Redis scenario: redis-benchmark -t set,get at -P 1 and -P 16,
straight to redis-server, through keel's RESP front and through HAProxy in
tcp mode, rounds alternating. The proxies get CPU 1 each (one worker, one
thread); redis-server and redis-benchmark share CPU 0 in every case, so
"direct" is the same machine minus the hop. Then the kill -9 failover of
the integration tests runs once for the recovery figures. Merges resp_*,
ratio_resp_* and redis_* keys into build/bench.json."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from benchlib import (CLIENT_CPU, KEEL, PIN, PROXY_CPU, ROOT, ROUNDS, free_port, load_average,
                      median, merge_figures, stop_all, wait_port)

REQUESTS = {1: int(os.environ.get("BENCH_REDIS_N1", "200000")),
            16: int(os.environ.get("BENCH_REDIS_N16", "2000000"))}


def benchmark(port, pipeline):
    """SET and GET requests per second, averaged."""
    out = subprocess.run(CLIENT_CPU + ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
                                       "-t", "set,get", "-c", "50", "-n",
                                       str(REQUESTS[pipeline]), "-P", str(pipeline), "--csv"],
                         capture_output=True, text=True, timeout=600).stdout
    rps = [float(m.group(2)) for m in re.finditer(r'^"(SET|GET)","([\d.]+)"', out, re.M)]
    if len(rps) != 2:
        raise SystemExit("bench: redis-benchmark said:\n" + out[-2000:])
    return sum(rps) / 2


def main():
    for tool in ("redis-server", "redis-benchmark", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh --bench installs it)" % tool)
    tmp = tempfile.mkdtemp(prefix="keel-bench-redis-")
    redis, p_keel, p_haproxy, admin = (free_port() for _ in range(4))
    procs = []

    def start(argv, port, name):
        log = open(os.path.join(tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                             start_new_session=True)
        procs.append(p)
        try:
            wait_port(port)
        except SystemExit:
            log.close()
            with open(os.path.join(tmp, name + ".log")) as f:
                print(f.read()[-2000:])
            raise
        return p

    try:
        start(CLIENT_CPU + ["redis-server", "--port", str(redis), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", tmp], redis, "redis")
        with open(os.path.join(tmp, "keel.yaml"), "w") as f:
            f.write('state_dir: "%s"\npid_file: ""\nworkers: { count: 1 }\n'
                    'log: { level: warn }\nmonitors: { routes: false, servers: false }\n'
                    'admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }\n'
                    'redis:\n  nodes: ["127.0.0.1:%d"]\n  front: { listen: ["127.0.0.1:%d"] }\n'
                    % (tmp, admin, redis, p_keel))
        start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel.yaml")], p_keel, "keel")
        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write("global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode tcp\n"
                    "  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n"
                    "listen redis\n  bind 127.0.0.1:%d\n  server r 127.0.0.1:%d\n"
                    % (p_haproxy, redis))
        start(PROXY_CPU + ["haproxy", "-f", os.path.join(tmp, "haproxy.cfg")], p_haproxy,
              "haproxy")
        # The front answers once keel verified the master.
        for _ in range(100):
            r = subprocess.run(["redis-cli", "-p", str(p_keel), "PING"], capture_output=True,
                               text=True)
            if r.stdout.strip() == "PONG":
                break
        targets = [("direct", redis), ("keel", p_keel), ("haproxy", p_haproxy)]
        res = {(n, p): [] for n, _ in targets for p in (1, 16)}
        print("Redis: redis-benchmark -t set,get -c 50, %d round%s%s; load average %s"
              % (ROUNDS, "" if ROUNDS == 1 else "s",
                 ", proxies pinned to CPU 1" if PIN else "", load_average()))
        for rnd in range(ROUNDS):
            for pipeline in (1, 16):
                for name, port in targets:
                    rps = benchmark(port, pipeline)
                    res[(name, pipeline)].append(rps)
                    print("  round %d  -P %-2d  %-8s %10.0f req/s" % (rnd + 1, pipeline, name, rps))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    avg = {k: median(v) for k, v in res.items()}   # medians of the rounds
    fig = {}
    for p in (1, 16):
        for n in ("direct", "keel", "haproxy"):
            fig["resp_rps_%s_p%d" % (n, p)] = round(avg[(n, p)])
        fig["ratio_resp_vs_haproxy_p%d" % p] = round(avg[("keel", p)] / avg[("haproxy", p)], 3)
        fig["ratio_resp_vs_direct_p%d" % p] = round(avg[("keel", p)] / avg[("direct", p)], 3)
    print("  %-6s %12s %12s %12s %10s %10s" % ("", "direct", "keel", "haproxy",
                                               "keel/hap", "keel/dir"))
    print("  goal at -P 16: keel/haproxy >= 1.25, keel/direct >= 0.9")
    for p in (1, 16):
        print("  -P %-3d %12.0f %12.0f %12.0f %10.2f %10.2f"
              % (p, avg[("direct", p)], avg[("keel", p)], avg[("haproxy", p)],
                 fig["ratio_resp_vs_haproxy_p%d" % p], fig["ratio_resp_vs_direct_p%d" % p]))

    # Failover: the integration test's scenario, measured once more here.
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import harness
    import test_redis
    h = harness.Harness("bench-failover")
    try:
        test_redis.test_sentinel_failover_kill_9(h)
    finally:
        h.stop_all()
    with open(os.path.join(ROOT, "build", "redis-failover.json")) as f:
        fo = json.load(f)
    fig["redis_recovery_ms_keel"] = fo["redis_recovery_ms_keel"]
    fig["redis_writes_to_old_master"] = fo["redis_writes_to_old_master"]
    fig["redis_sentinel_switch_ms"] = fo["sentinel_switch_ms"]
    fig["redis_failover_http_failed"] = fo["http_failed"]
    print("  failover: Sentinel switched %d ms after kill -9; keel's clients wrote again "
          "%.1f ms after +switch-master; %d writes reached the old master; %d HTTP requests "
          "failed" % (fo["sentinel_switch_ms"], fo["redis_recovery_ms_keel"],
                      fo["redis_writes_to_old_master"], fo["http_failed"]))
    merge_figures(fig)


if __name__ == "__main__":
    main()
