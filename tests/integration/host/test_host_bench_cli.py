"""tools/bench/bench_host_scale.py's command line: a bad --engines is a usage error that
says what is allowed, not a traceback; an engine without :HOSTS means one host."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BENCH = os.path.join(ROOT, "tools", "bench", "bench_host_scale.py")


def _engines(text):
    sys.path.insert(0, os.path.dirname(BENCH))
    try:
        import bench_host_scale
    finally:
        sys.path.remove(os.path.dirname(BENCH))
    return bench_host_scale._engines(text)


def test_engines_name_their_host_count_or_mean_one_host():
    assert _engines("sqlite") == "sqlite:1"
    assert _engines("sqlite:2, postgresql") == "sqlite:2,postgresql:1"


@pytest.mark.parametrize("bad", ["sqlit", "sqlite:0", "sqlite:x", "postgresql:-1", ""])
def test_a_bad_engine_is_a_usage_error_naming_what_is_allowed(bad):
    done = subprocess.run([sys.executable, BENCH, "--engines", bad, "--target-windows", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "each engine is sqlite or postgresql" in done.stderr
