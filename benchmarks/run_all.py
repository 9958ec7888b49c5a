"""Run every benchmark in turn (each prints its ratios and writes results/*.json).

BENCH_THREADS sets the threads (default 2). Run on an otherwise idle machine: each script
prints the foreign CPU load it saw before starting.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    failed = 0
    for script in ("bench_core.py", "bench_attribution.py", "bench_maximize.py", "bench_audit.py"):
        print(f"\n##### {script}", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode
    sys.exit(failed)
