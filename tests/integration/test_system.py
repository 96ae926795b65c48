"""keel's own DHCP client against a DHCP server in a network namespace the
test makes (a veth pair: keel's end in this namespace, with no router
given, so the host's routes stay as they are): a lease, its renewal at T1,
rebinding at T2 when the server goes quiet, the address given up when the
lease ends, a new lease when the server is back, a NAK; the address gate
holds the workers until the lease; a NIC that does not exist is named."""

import os
import re
import subprocess
import time

import harness
from harness import check, free_port, http_get, wait_for
from test_api import setup
from test_proxy import yaml_conf


def ip(*args, ns=None):
    argv = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def veth(h):
    """A veth pair: kbN here (keel's), kaN in namespace kdN with 10.77.N.1."""
    n = os.getpid() % 200 + 1
    ns, ours, theirs = "kd%d" % n, "kb%d" % n, "ka%d" % n
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "link", "del", ours], capture_output=True)
    try:
        ip("netns", "add", ns)
    except subprocess.CalledProcessError as e:
        harness.skip("no network namespaces here: %s" % e.stderr.strip())
    h.defer(lambda: subprocess.run(["ip", "netns", "del", ns], capture_output=True))
    h.defer(lambda: subprocess.run(["ip", "link", "del", ours], capture_output=True))
    ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
    ip("link", "set", theirs, "netns", ns)
    ip("addr", "add", "10.77.%d.1/24" % n, "dev", theirs, ns=ns)
    ip("link", "set", theirs, "up", ns=ns)
    ip("link", "set", "lo", "up", ns=ns)
    return n, ns, ours, theirs


def test_a_dhcp_lease_is_renewed_rebound_lost_and_got_again(h):
    n, ns, ours, theirs = veth(h)
    mute, nak = h.path("mute"), h.path("nak")
    server = "10.77.%d.1" % n
    addr = "10.77.%d.50" % n
    d = h.start("dhcpd", ["ip", "netns", "exec", ns, "python3",
                          os.path.join(harness.HERE, "dhcpd.py"), "--iface", theirs,
                          "--server", server, "--addr", addr, "--lease", "8",
                          "--dns", "10.77.%d.53" % n, "--mute", mute, "--nak", nak])
    d.wait_log(r"dhcpd on")
    a_port = h.http_backend("a")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"ua": [a_port]}, [{"path": "/", "upstream": "ua"}])
    text += ("system: { interfaces: [{ name: %s }] }\n"
             "supervise: { wait_for: [link, address] }\n" % ours)
    k = h.keel(text, wait_port=admin)
    k.wait_log(r"the workers wait for (link|address)")
    k.wait_log(r"interface %s: DHCP lease of %s for 8 s from %s" % (ours, re.escape(addr),
                                                                     re.escape(server)))
    k.wait_log(r"ready after [\d.]+ s: starting the workers")
    check("inet %s/24" % addr in ip("addr", "show", ours), ip("addr", "show", ours))
    wait_for("the proxy", lambda: http_get(front, "/").status == 200)
    a, _ = setup(k, admin)
    st, js = a.call("GET", "/api/v1/status")
    eth = js["system"]["interfaces"][0]
    check(eth["name"] == ours and eth["state"] == "bound" and eth["address"] == addr + "/24"
          and eth["server"] == server and eth["lease_s"] == 8 and eth["gateway"] == "", eth)
    check(js["system"]["dns"] == ["10.77.%d.53" % n], js["system"])

    # T1 (4 s): renewed by a unicast REQUEST from the address.
    k.wait_log(r"interface %s: DHCP lease of %s renewed for 8 s" % (ours, re.escape(addr)),
               timeout=10)
    check(re.search(r"got REQUEST from %s ciaddr %s" % (re.escape(addr), re.escape(addr)),
                    d.log()), d.log())
    check("did not renew the lease" not in k.log(), "renewed only when rebinding:\n%s"
          % k.log()[-2000:])

    # The server goes quiet: rebinding at T2, the address gone at the end.
    open(mute, "w").close()
    mark = k.mark()
    k.wait_log(r"the DHCP server did not renew the lease: asking any server", timeout=15,
               after=mark)
    k.wait_log(r"interface %s: address %s given up: the lease ended with no renewal"
               % (ours, re.escape(addr)), timeout=15, after=mark)
    check("inet %s" % addr not in ip("addr", "show", ours), ip("addr", "show", ours))
    k.wait_log(r"interface %s: no DHCP server answers \(\d+ DISCOVERs in \d+ s\); keel keeps "
               r"asking" % ours, timeout=25, after=mark)
    st, js = a.call("GET", "/api/v1/status")
    eth = js["system"]["interfaces"][0]
    check(eth["state"] == "selecting" and "no DHCP server answers" in eth["why"], eth)
    check(http_get(admin, "/healthz").status == 200)

    # Back: a new lease (the retries are up to 32 s apart, jittered).
    os.unlink(mute)
    mark = k.mark()
    k.wait_log(r"interface %s: DHCP lease of %s for 8 s" % (ours, re.escape(addr)),
               timeout=40, after=mark)

    # A NAK at the next renewal: the address goes, and a new lease comes.
    open(nak, "w").close()
    mark = k.mark()
    k.wait_log(r"interface %s: the DHCP server said NAK" % ours, timeout=10, after=mark)
    os.unlink(nak)
    k.wait_log(r"interface %s: DHCP lease of %s for 8 s" % (ours, re.escape(addr)),
               timeout=40, after=mark)


def test_an_interface_that_does_not_exist_is_named_and_keel_runs_on(h):
    a_port = h.http_backend("a")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"ua": [a_port]}, [{"path": "/", "upstream": "ua"}])
    text += "system: { interfaces: [{ name: nosuch9 }] }\n"
    k = h.keel(text, wait_port=admin)
    k.wait_log(r"error system: interface nosuch9 does not exist \(there are: lo")
    wait_for("the proxy", lambda: http_get(front, "/").status == 200)
    a, _ = setup(k, admin)
    st, js = a.call("GET", "/api/v1/status")
    eth = js["system"]["interfaces"][0]
    check(eth["state"] == "missing" and "does not exist" in eth["why"], eth)
    st, js = a.call("POST", "/api/v1/commands/system.reboot", {})
    check(st == 409 and "not this system's init (PID 1)" in js["error"], (st, js))
    st, js = a.call("POST", "/api/v1/commands/system.kernel_log", {})
    check(st == 200 and isinstance(js["text"], str), (st, str(js)[:200]))
    # A ring larger than an answer gives its newest lines, whole, and says so.
    check(isinstance(js["truncated"], bool) and len(js["text"]) <= 60 * 1024, str(js)[:200])
    check(not js["truncated"] or js["text"].startswith("<"), js["text"][:80])
