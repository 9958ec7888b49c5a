"""scripts/coverage.py reports every known model, and the engine covers all of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_coverage_script_reports_every_known_model():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "coverage.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(": ", 1) for line in run.stdout.strip().splitlines())
    assert set(lines) >= {"factory/small_cnn", "factory/resnet18_like", "factory/resnet18_like_bn",
                          "ppocr-cls", "ppocr-det", "ppocr-rec", "yolov8n-nudenet"}
    for name, status in lines.items():
        assert status == "covered" or status.startswith("unavailable"), (name, status)
    assert lines["factory/small_cnn"] == "covered"
