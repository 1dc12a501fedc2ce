"""Entry point of the Bazel py_test targets: runs pytest on the given files.

pytest exits 5 when it collected no test; under Bazel that happens when a
whole file is skipped at collection (e.g. Ray not installed), and the skip
reason is printed, so it is reported as a pass with that reason shown.
"""

import os
import sys

import pytest

if __name__ == "__main__":
    # Bazel runs tests in a sandbox with a read-only tree: keep pytest's cache out.
    args = ["-q", "-p", "no:cacheprovider", "-rs", *sys.argv[1:]]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    code = pytest.main(args)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("bazel_pytest_main: no test collected (skipped whole); see the reason above.")
        code = 0
    sys.exit(int(code))
