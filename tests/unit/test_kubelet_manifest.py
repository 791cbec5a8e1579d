"""Manifest parsing and validation: defaults, warnings naming the path, errors naming the path."""

from __future__ import annotations

import json

import pytest

from pycri.kubelet.model.manifest import ManifestError, parse_documents, parse_manifest
from pycri.kubelet.model.quantity import parse_cpu_millis, parse_quantity

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
  annotations: {note: hello}
spec:
  terminationGracePeriodSeconds: 5
  shareProcessNamespace: true
  hostname: front
  volumes:
  - {name: data, emptyDir: {}}
  - {name: host, hostPath: {path: /tmp, type: Directory}}
  initContainers:
  - {name: init, image: busybox:1.36, command: [sh, -c, "echo init"]}
  containers:
  - name: app
    image: busybox
    args: [sleep, "3600"]
    env:
    - {name: GREETING, value: hello}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    workingDir: /data
    ports: [{containerPort: 8080, hostPort: 18080}]
    volumeMounts: [{name: data, mountPath: /data}, {name: host, mountPath: /host, readOnly: true}]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: "0.5", memory: 128Mi}
    securityContext: {runAsUser: 1000, capabilities: {add: [NET_ADMIN]}}
    readinessProbe:
      exec: {command: [test, -e, /tmp/ready]}
      periodSeconds: 2
      failureThreshold: 5
"""


def test_a_pod_with_defaults_applied() -> None:
    manifest = parse_manifest(POD, source="web.yaml", node="node-1")
    assert manifest.warnings == ()
    (pod,) = manifest.pods
    assert (pod.name, pod.namespace, pod.source) == ("web", "default", "web.yaml")
    assert pod.labels == {"app": "web"}
    assert pod.annotations == {"note": "hello"}
    spec = pod.spec
    assert (spec.restart_policy, spec.termination_grace_period_seconds) == ("Always", 5)
    assert spec.share_process_namespace
    assert spec.hostname == "front"
    init, app = spec.init_containers[0], spec.containers[0]
    assert init.image_pull_policy == "IfNotPresent"  # a tag other than latest
    assert app.image_pull_policy == "Always"  # no tag means latest
    assert app.env[1].field_path == "metadata.name"
    assert app.resources.cpu_request_millis == 100
    assert app.resources.cpu_limit_millis == 500
    assert app.resources.memory_limit_bytes == 128 * 1024 * 1024
    assert app.security_context.run_as_user == 1000
    probe = app.readiness_probe
    assert probe is not None
    assert (probe.period_seconds, probe.timeout_seconds) == (2, 1)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 5)
    assert [v.kind for v in spec.volumes] == ["emptyDir", "hostPath"]


def test_uid_is_derived_from_content_and_node() -> None:
    first = parse_manifest(POD, node="node-1").pods[0].uid
    assert parse_manifest(POD, node="node-1").pods[0].uid == first
    assert parse_manifest(POD, node="node-2").pods[0].uid != first
    changed = POD.replace("sleep, ", "sleep, '7200', ")
    assert parse_manifest(changed, node="node-1").pods[0].uid != first
    given = POD.replace("  name: web\n", "  name: web\n  uid: 1234-abcd\n")
    assert parse_manifest(given).pods[0].uid == "1234-abcd"


def test_json_and_multi_document_and_list() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "one"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert parse_manifest(json.dumps(doc)).pods[0].name == "one"
    two = dict(doc, metadata={"name": "two", "namespace": "team"})
    text = f"{json.dumps(doc)}\n---\n{json.dumps(two)}\n---\n"
    assert [p.key for p in parse_manifest(text).pods] == ["default/one", "team/two"]
    listed = {"apiVersion": "v1", "kind": "List", "items": [doc, two]}
    assert len(parse_manifest(json.dumps(listed)).pods) == 2


def test_deployment_replicas_are_named_by_index() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: team}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  strategy: {type: RollingUpdate}
  template:
    metadata: {labels: {app: api, tier: back}}
    spec: {containers: [{name: c, image: busybox}]}
"""
    manifest = parse_manifest(text, node="n")
    obj = manifest.objects[0]
    assert obj.deployment is not None
    assert obj.deployment.replicas == 3
    assert [p.name for p in obj.pods] == ["api-0", "api-1", "api-2"]
    assert all(p.owner == "api" and p.namespace == "team" for p in obj.pods)
    assert obj.pods[0].labels == {"app": "api", "tier": "back"}
    assert len({p.uid for p in obj.pods}) == 3
    # scaling keeps the uids of the replicas that stay
    scaled = parse_manifest(text.replace("replicas: 3", "replicas: 5"), node="n")
    assert [p.uid for p in scaled.pods[:3]] == [p.uid for p in obj.pods]
    assert manifest.warnings == (
        'deployment "api": spec.strategy: ignored: a changed template replaces every replica '
        "at once",
    )


def test_deployment_selector_must_match_template() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: busybox}]}
"""
    with pytest.raises(ManifestError, match=r"spec\.template\.metadata\.labels: selector"):
        parse_manifest(text)


def test_unsupported_fields_are_warnings_naming_the_path() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  nodeSelector: {disk: ssd}
  volumes: [{name: cfg, configMap: {name: settings}}]
  containers:
  - name: app
    image: busybox
    lifecycle: {preStop: {exec: {command: [sleep, "1"]}}}
    livenessProbe: {httpGet: {path: /, port: 80}}
    env: [{name: SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}]
    resources: {limits: {nvidia.com/gpu: 1}}
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
status: {phase: Running}
"""
    manifest = parse_manifest(text)
    paths = sorted(w.split(": ")[1] for w in manifest.warnings)
    assert paths == sorted(
        [
            "spec.nodeSelector",
            "spec.volumes[0].configMap",
            "spec.containers[0].lifecycle",
            "spec.containers[0].env[0].valueFrom.secretKeyRef",
            "spec.containers[0].resources.limits.nvidia.com/gpu",
            "spec.containers[0].livenessProbe.httpGet",
        ]
    )
    container = manifest.pods[0].spec.containers[0]
    assert container.liveness_probe is None
    assert container.env == ()
    assert manifest.pods[0].spec.volumes[0].kind == "emptyDir"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("image: busybox", "image: ''"), "spec.containers[1].image: required value"),
        (("image: busybox", "image: Bad_Image"), "spec.containers[1].image: invalid image"),
        (("name: b", "name: a"), "spec.containers[1].name: duplicate value 'a'"),
        (("name: b", "name: B_1"), "spec.containers[1].name: invalid value 'B_1'"),
        (("mountPath: /data", "mountPath: data"), "volumeMounts[0].mountPath: 'data' must be"),
        (("name: data", "name: other"), "spec.containers[1].volumeMounts[0].name: not found"),
        (("restartPolicy: Always", "restartPolicy: Sometimes"), "spec.restartPolicy: unsupported"),
        (("periodSeconds: 1", "periodSeconds: 0"), "livenessProbe.periodSeconds: must be at least"),
        (("periodSeconds: 1", "successThreshold: 2"), "livenessProbe.successThreshold: must be 1"),
        (("cpu: 100m", "cpu: lots"), "spec.containers[1].resources.limits.cpu: 'lots' is not"),
        (("containerPort: 80", "containerPort: 70000"), "ports[0].containerPort: must be at most"),
        (("command: [sleep, '1']", "command: sleep"), "spec.containers[1].command: must be a list"),
        (("kind: Pod", "kind: Service"), "kind: unsupported kind 'Service'"),
        (("apiVersion: v1", "apiVersion: v2"), "apiVersion: a Pod is apiVersion v1"),
    ],
)
def test_invalid_manifests_name_the_field(change: tuple[str, str], message: str) -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: Always
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: a
    image: docker.io/library/busybox:latest
  - name: b
    image: busybox
    command: [sleep, '1']
    ports: [{containerPort: 80}]
    resources: {limits: {cpu: 100m}}
    volumeMounts: [{name: data, mountPath: /data}]
    livenessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
"""
    old, new = change
    assert old in text
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text.replace(old, new, 1))
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_every_error_is_reported_with_its_document() -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": []}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"}},
    ]
    with pytest.raises(ManifestError) as caught:
        parse_documents(docs, source="pods.yaml")
    assert caught.value.errors == [
        'pods.yaml: document 1: pod "": metadata.name: required value',
        'pods.yaml: document 1: pod "": spec.containers: must have at least one container',
        'pods.yaml: document 2: pod "ok": spec: required value',
        'pods.yaml: document 2: pod "ok": spec.containers: required value',
    ]


def test_invalid_yaml_and_duplicates() -> None:
    with pytest.raises(ManifestError, match="not valid YAML"):
        parse_manifest("a: [unclosed", source="bad.yaml")
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: b}]}"
    )
    with pytest.raises(ManifestError, match="duplicate Pod 'a'"):
        parse_manifest(f"{pod}\n---\n{pod}")


def test_init_containers_may_not_probe_or_be_sidecars() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - {name: i, image: busybox, restartPolicy: Always,
     readinessProbe: {exec: {command: ["true"]}}}
  containers: [{name: c, image: busybox}]
"""
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert caught.value.errors == [
        'pod "web": spec.initContainers[0].restartPolicy: sidecar init containers are not '
        "supported",
        'pod "web": spec.initContainers[0].readinessProbe: may not be set for init containers',
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("128Mi", 134217728), ("1G", 10**9), ("1.5Gi", 1610612736), ("100m", 0.1), (2, 2)],
)
def test_quantities(text: object, value: float) -> None:
    assert float(parse_quantity(text)) == pytest.approx(value)


def test_cpu_millis_round_up() -> None:
    assert parse_cpu_millis("0.1") == 100
    assert parse_cpu_millis("250m") == 250
    assert parse_cpu_millis("0.0001") == 1
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("12 apples")
