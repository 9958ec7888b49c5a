import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # registered here rather than in pyproject.toml (owned elsewhere); deselect with -m "not slow"
    config.addinivalue_line("markers", "slow: long-running checks (deselect with -m 'not slow')")
