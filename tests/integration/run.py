"""Runs the integration tests: every test_* function of every test_*.py here,
each with a fresh Harness and a time limit. Whatever a test started is
stopped by PID when it ends, fails, times out, or the runner is killed.
A test that calls harness.skip() is counted as skipped, never as passed.
The last line is "N passed, N failed, N skipped"; --result gets the three
numbers."""

import argparse
import atexit
import importlib.util
import inspect
import os
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

current = None


class Timeout(Exception):
    pass


def on_alarm(signo, frame):
    raise Timeout("timed out")


def on_term(signo, frame):
    if current is not None:
        current.stop_all()
    sys.exit(128 + signo)


def discover(where, only):
    tests = []
    for fname in sorted(os.listdir(where)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fname[:-3], os.path.join(where, fname))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        fns = [f for n, f in vars(mod).items()
               if n.startswith("test_") and inspect.isfunction(f)]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in fns:
            name = "%s.%s" % (fname[:-3], f.__name__[5:])
            if not only or any(o in name for o in only):
                tests.append((name, f))
    return tests


def main():
    global current
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", default=harness.KEEL)
    ap.add_argument("--result")
    ap.add_argument("--timeout", type=int, default=90)
    ap.add_argument("--san", action="store_true", help="KEEL is an ASan+UBSan build")
    ap.add_argument("--dir", default=HERE, help="where the test_*.py files are")
    ap.add_argument("only", nargs="*", help="run the tests whose name contains one of these")
    args = ap.parse_args()

    os.environ["KEEL_BIN"] = harness.KEEL = os.path.abspath(args.keel)
    if args.san:
        os.environ["KEEL_SAN"] = "1"
        harness.SANITIZED = True
        # The libraries' own leaks, each explained in the file; none of keel's.
        os.environ["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % os.path.join(
            HERE, "fixtures", "lsan.supp")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    atexit.register(lambda: current and current.stop_all())

    passed = failed = skipped = 0
    failures = []       # (name, first line of why), repeated at the end
    for name, fn in discover(os.path.abspath(args.dir), args.only):
        current = h = harness.Harness(name.replace(".", "-"))
        t0 = time.monotonic()
        ok = False
        skip_why = None
        signal.alarm(getattr(fn, "timeout", args.timeout))   # a long one says so
        try:
            fn(h)
            ok = True
        except harness.TestSkipped as e:
            ok = True
            skip_why = str(e)
        except BaseException as e:  # noqa: B902 - report everything, then go on
            if isinstance(e, KeyboardInterrupt):
                raise
            print("FAIL %s: %s" % (name, e))
            failures.append((name, str(e).split("\n")[0][:200]))
            tb = traceback.extract_tb(e.__traceback__)
            for fr in tb:
                if "harness.py" not in fr.filename and "run.py" not in fr.filename:
                    print("    %s:%d: %s" % (os.path.relpath(fr.filename), fr.lineno, fr.line))
            for p in h.procs:
                print("    --- last lines of %s (pid %d) ---" % (p.name, p.pid))
                for line in p.log().splitlines()[-15:]:
                    print("    " + line)
        finally:
            signal.alarm(0)
            h.stop_all()
            current = None
        for pname, text in h.sanitizer_reports():
            ok = False
            failures.append((name, "sanitizer report from %s" % pname))
            print("FAIL %s: sanitizer report from %s:" % (name, pname))
            for line in text.splitlines()[-30:]:
                print("    " + line)
        if ok and skip_why is not None:
            skipped += 1
            print("SKIP %s: %s" % (name, skip_why))
            shutil.rmtree(h.dir, ignore_errors=True)
        elif ok:
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
            shutil.rmtree(h.dir, ignore_errors=True)
        else:
            failed += 1
            print("    (files kept in %s)" % h.dir)
        sys.stdout.flush()

    if args.result:
        os.makedirs(os.path.dirname(args.result), exist_ok=True)
        with open(args.result, "w") as f:
            f.write("%d %d %d\n" % (passed, failed, skipped))
            for name, why in failures:
                f.write("%s: %s\n" % (name, why))
    for name, why in failures:
        print("failed: %s: %s" % (name, why))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
