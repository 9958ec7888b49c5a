"""The server package also ships the thin client (the CLI uses it); clients/python builds it alone."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["inspector", "inspector.*"]) + ["inspector_client", "inspector_client.v1"],
    package_dir={"inspector_client": "clients/python/inspector_client"},
)
