"""pycri.core.metrics: the descriptors and the builder of CRI metrics from figures."""

from __future__ import annotations

from pycri.api import api_pb2 as cri
from pycri.core import metrics
from pycri.testing.conformance import REQUIRED_METRICS

SUBJECT = metrics.Subject(
    container="app",
    id="c" * 64,
    image="docker.io/library/busybox:latest",
    name="k8s_app_web_default_uid_0",
    namespace="default",
    pod="web",
)


def _by_name() -> dict[str, cri.MetricDescriptor]:
    return {d.name: d for d in metrics.descriptors()}


def test_descriptors_are_cadvisors() -> None:
    described = _by_name()
    assert len(described) == len(metrics.DESCRIPTORS)
    assert set(described) >= REQUIRED_METRICS
    for d in described.values():
        assert d.name.startswith("container_")
        assert d.help
        assert list(d.label_keys[:6]) == list(metrics.BASE_LABEL_KEYS)
    assert described["container_cpu_usage_seconds_total"].label_keys[6:] == ["cpu"]
    assert described["container_network_receive_bytes_total"].label_keys[6:] == ["interface"]
    assert described["container_memory_failures_total"].label_keys[6:] == [
        "failure_type",
        "scope",
    ]


def test_descriptors_are_copies() -> None:
    metrics.descriptors()[0].name = "changed"
    assert metrics.descriptors()[0].name != "changed"


def _check_labels(found: list[cri.Metric]) -> None:
    keys = {d.name: len(d.label_keys) for d in metrics.DESCRIPTORS}
    for m in found:
        assert len(m.label_values) == keys[m.name], m.name
        assert list(m.label_values[:6]) == SUBJECT.values() or m.label_values[0] == "POD"


def test_container_metrics_from_figures() -> None:
    usage = metrics.Usage(
        cpu_usage_ns=1_500_000_000,
        cpu_user_ns=3_000_000,
        cpu_system_ns=0,
        memory_working_set=4096,
        pgfault=10,
        pgmajfault=1,
        io=[metrics.DeviceIO(8, 0, read_bytes=512, write_bytes=1024, reads=1, writes=2)],
        pressure={"cpu": (2_000_000, 0)},
    )
    fs = metrics.Filesystem("8:1", usage_bytes=10, limit_bytes=100, inodes_total=5, inodes_free=4)
    out = metrics.container_metrics(
        SUBJECT, usage, filesystem=fs, started_ns=1_700_000_000_900_000_000, now=42 * 10**9
    )
    assert out.container_id == SUBJECT.id
    _check_labels(list(out.metrics))
    values = {(m.name, tuple(m.label_values[6:])): m for m in out.metrics}
    cpu = values[("container_cpu_usage_seconds_total", ("total",))]
    assert (cpu.value.value, cpu.metric_type, cpu.timestamp) == (2, cri.COUNTER, 42 * 10**9)
    # whole seconds, rounded up: a little work shows, none does not
    assert values[("container_cpu_user_seconds_total", ())].value.value == 1
    assert values[("container_cpu_system_seconds_total", ())].value.value == 0
    gauge = values[("container_memory_working_set_bytes", ())]
    assert (gauge.value.value, gauge.metric_type) == (4096, cri.GAUGE)
    assert values[("container_memory_failures_total", ("pgmajfault", "container"))].value.value == 1
    assert values[("container_fs_writes_bytes_total", ("8:0",))].value.value == 1024
    blkio = ("container_blkio_device_usage_total", ("8:0", "8", "0", "Write"))
    assert values[blkio].value.value == 1024
    assert values[("container_fs_inodes_free", ("8:1",))].value.value == 4
    assert values[("container_pressure_cpu_waiting_seconds_total", ())].value.value == 1
    assert values[("container_start_time_seconds", ())].value.value == 1_700_000_000
    assert values[("container_last_seen", ())].value.value == 42
    # figures the shim did not give are left out, not reported as zero
    assert ("container_memory_rss", ()) not in values
    assert ("container_fs_usage_bytes", ()) not in values


def test_pod_sandbox_metrics() -> None:
    container = metrics.container_metrics(SUBJECT, metrics.Usage(cpu_usage_ns=1))
    pod_subject = metrics.Subject(
        container=metrics.POD_CONTAINER_NAME,
        id="p" * 64,
        image="registry.k8s.io/pause:3.9",
        name="k8s_POD_web_default_uid_0",
        namespace="default",
        pod="web",
    )
    pod = metrics.pod_sandbox_metrics(
        pod_subject,
        [container],
        usage=metrics.Usage(memory_usage=1),
        interfaces=[metrics.Interface("eth0", rx_bytes=7, tx_packets=3)],
    )
    assert pod.pod_sandbox_id == "p" * 64
    assert list(pod.container_metrics) == [container]
    _check_labels(list(pod.metrics))
    values = {m.name: m for m in pod.metrics}
    assert values["container_network_receive_bytes_total"].label_values[-1] == "eth0"
    assert values["container_network_receive_bytes_total"].value.value == 7
    assert values["container_network_transmit_packets_total"].value.value == 3
    assert values["container_memory_usage_bytes"].label_values[0] == "POD"
    assert set(metrics.names(pod)) >= {"container_cpu_usage_seconds_total", "container_last_seen"}
