"""make bench, update scenario: keel's disk image in a qemu box (TCG),
updated through its Update page and API. Figures, into build/bench.json:

  update_seconds                 a good bundle (18 MiB) from the start of its
                                 upload through the Update page to the new
                                 slot committed after its reboot
  update_tampered_bytes_written  bytes of the inactive slot changed by four
                                 refused bundles (a byte changed in the
                                 payload, the block table and the manifest;
                                 another key), read back from outside with
                                 qemu stopped; goal 0
  update_powercut_runs           power cuts (qemu killed) at random points of
                                 an update: upload and write, reboot, trial,
                                 after the commit (UPDATE_POWERCUT_RUNS, 50)
  update_unbootable              runs after which the box did not come up; goal 0
  update_false_rollbacks         runs after which the box ran anything but the
                                 last committed slot; goal 0"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import guest  # noqa: E402
import harness  # noqa: E402
import test_image  # noqa: E402
from benchlib import merge_figures  # noqa: E402


def main():
    harness.KEEL = os.path.abspath(os.environ.get("KEEL_BIN", os.path.join(HERE, "..", "..", "build", "keel")))
    if not guest.available():
        raise SystemExit("bench: the qemu guest is missing (tests/setup.sh)")
    fig = {}
    h = harness.Harness("bench-update")
    try:
        fig.update(test_image.updates(h))
    finally:
        h.stop_all()
    h = harness.Harness("bench-powercut")
    runs = int(os.environ.get("UPDATE_POWERCUT_RUNS", "50"))
    t0 = time.monotonic()
    try:
        f, stages = test_image.powercuts(h, runs, seed=int(time.time()))
        fig.update(f)
    finally:
        h.stop_all()
    print("  %d power cuts in %.0f min (%s): %d unbootable, %d false rollbacks"
          % (runs, (time.monotonic() - t0) / 60,
             ", ".join("%d in the %s" % (n, s) for s, n in sorted(stages.items())),
             fig["update_unbootable"], fig["update_false_rollbacks"]))
    merge_figures(fig)


if __name__ == "__main__":
    main()
