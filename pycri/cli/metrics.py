"""CRI metrics (cAdvisor's names, from the runtime): ``metricdescs`` and ``metricsp``.

As crictl: the whole response as JSON (the default) or YAML; ``metricsp -w``
prints it again every second until interrupted.
"""

from __future__ import annotations

import time

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import output_option, pass_session
from pycri.cli.output import emit_message
from pycri.cli.session import CrictlSession

__all__ = ["COMMANDS"]

#: seconds between two prints of ``metricsp --watch`` (crictl's watch period)
WATCH_PERIOD = 1.0


@click.command("metricdescs")
@output_option(["json", "yaml"], default="json")
@pass_session
def metricdescs_command(session: CrictlSession, output: str) -> None:
    """List the metric descriptors: the metrics available through the CRI."""
    request = cri.ListMetricDescriptorsRequest()
    emit_message(session.rpc(session.client.list_metric_descriptors, request), output)


@click.command("metricsp")
@output_option(["json", "yaml"], default="json")
@click.option("-w", "--watch", is_flag=True, help="Print again every second until interrupted.")
@pass_session
def metricsp_command(session: CrictlSession, output: str, watch: bool) -> None:
    """List pod metrics: the CRI's replacement of cAdvisor's /metrics/cadvisor."""
    request = cri.ListPodSandboxMetricsRequest()
    try:
        while True:
            emit_message(session.rpc(session.client.list_pod_sandbox_metrics, request), output)
            if not watch:
                return
            time.sleep(WATCH_PERIOD)
    except KeyboardInterrupt:
        return


COMMANDS = [metricdescs_command, metricsp_command]
