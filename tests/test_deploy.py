"""deploy/: the Kubernetes manifests validate offline against the API schemas, agree with each
other, and start the server with flags it accepts. (Building the container image needs a container
engine, which CI does not have; the Dockerfile's command is checked against the CLI instead.)"""

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from inspector.cli.main import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S_VERSION = "1.30.0"


def documents():
    return [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_validates_strictly(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": "not-a-number"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_manifests_agree_and_the_server_accepts_their_flags(tmp_path):
    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents()}
    deployment = docs[("Deployment", "inspector")]
    service = docs[("Service", "inspector-headless")]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert service["spec"]["clusterIP"] == "None"  # clients balance over every pod
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(names)
    assert container["readinessProbe"]["grpc"]["port"] == names["grpc"]
    args = build_parser().parse_args(["serve", *container["args"]])
    assert (args.port, args.http_port, args.metrics_port) == (names["grpc"], names["http"], names["metrics"])
    assert args.host == "0.0.0.0"
    secrets = {n for (kind, n) in docs if kind == "Secret"}
    refs = {e["secretRef"]["name"] for e in container.get("envFrom", ())} | {
        v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert refs <= secrets
    # replicas share one store: the Secret's s3:// spec (Kubernetes expands $(VAR) in args from the
    # container's environment, envFrom included), required, and the volume is only a bounded cache
    variable = re.fullmatch(r"\$\((\w+)\)", str(args.store)).group(1)
    store_secret = docs[("Secret", "inspector-store")]
    assert store_secret["stringData"][variable].startswith("s3://")
    assert {"name": "inspector-store"} == next(e["secretRef"] for e in container["envFrom"])  # not optional
    from inspector.cli.serve import config_from_args

    tokens = tmp_path / "tokens"  # the mounted inspector-tokens Secret
    tokens.write_text(docs[("Secret", "inspector-tokens")]["stringData"]["tokens"])
    given = {str(args.store): store_secret["stringData"][variable], str(args.auth_token_file): str(tokens)}
    config = config_from_args(build_parser().parse_args(["serve", *[given.get(a, a) for a in container["args"]]]))
    assert str(config.store_dir).startswith("s3://") and config.store_cache_max_bytes == 8 << 30
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    cache = next(v for v in pod["spec"]["volumes"] if v["name"] == mounts[str(config.store_cache_dir)])
    assert "emptyDir" in cache
    assert args.workers * args.threads == int(container["resources"]["requests"]["cpu"])


def test_the_dockerfile_runs_the_server_with_flags_it_accepts():
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*?\])$", text.replace("\\\n", ""), re.M | re.S).group(1))
    assert entry == ["inspector", "serve"]
    args = build_parser().parse_args(["serve", *cmd])
    assert args.http_port == 8080 and str(args.store) == "/var/lib/inspector/store"
    assert re.search(r"^EXPOSE 50051 8080 9100$", text, re.M)
