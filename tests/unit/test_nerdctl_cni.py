"""The nerdctl shim's CNI cleanup picks exactly one pod's rules (shims/nerdctl/cni.py).

The listing is ``iptables -t nat -S`` as the bridge plugin 1.1.1 and
portmap left it here, with two pods (one whose id starts like the other's)
and Docker's own rules; the release runs against stand-in binaries that
record what they are asked.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from pycri_shims.nerdctl import cni
from pycri_shims.nerdctl.cni import PodNetwork, chain_name, nat_rules_of, networks_of

OURS = "pycri-d9df790d60ef700177e57c0d9b21f04a9a75ba4bf7f4db1e5cfcc49639d50724"
# same start, another pod
OTHER = "pycri-d9df790d60ef700177e57c0d9b21f04a9a75ba4bf7f4db1e5cfcc49639d50725"


def _rules(cni_id: str, ip: str) -> list[str]:
    chain = chain_name("bridge", cni_id)
    comment = f'--comment "name: \\"bridge\\" id: \\"{cni_id}\\""'
    return [
        f"-N {chain}",
        f"-A POSTROUTING -s {ip}/32 -m comment {comment} -j {chain}",
        f"-A {chain} -d 10.4.0.0/24 -m comment {comment} -j ACCEPT",
        f"-A {chain} ! -d 224.0.0.0/4 -m comment {comment} -j MASQUERADE",
    ]


LISTING = "\n".join(
    [
        "-P PREROUTING ACCEPT",
        "-P POSTROUTING ACCEPT",
        "-N DOCKER",
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        *_rules(OURS, "10.4.0.2"),
        *_rules(OTHER, "10.4.0.3"),
        # portmap's entry rule names the pod too, but is portmap's to remove
        f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"bridge\\" id: '
        f'\\"{OURS}\\"" -m multiport --dports 39124 -j CNI-DN-bbf4897cc2b8b69690dd4',
    ]
)


def test_the_chain_name_is_the_bridge_plugins() -> None:
    # seen on this host for that pod: -N CNI-213f1aa545c27ceaefebd99c
    assert chain_name("bridge", OURS) == "CNI-213f1aa545c27ceaefebd99c"


def test_only_the_pods_own_rules_are_picked() -> None:
    rules, chain_exists = nat_rules_of(LISTING, "bridge", OURS)
    assert chain_exists
    assert len(rules) == 1
    assert rules[0].startswith("-A POSTROUTING -s 10.4.0.2/32 ")
    assert nat_rules_of(LISTING, "other-net", OURS) == ([], False)


def test_networks_of_leaves_out_what_is_not_cni() -> None:
    assert networks_of({"nerdctl/networks": '["bridge"]'}) == ["bridge"]
    assert networks_of({"nerdctl/networks": '["host"]'}) == []
    assert networks_of({"nerdctl/networks": '["container:abc"]'}) == []
    assert networks_of({}) == []
    assert networks_of({"nerdctl/networks": "not json"}) == []


def _stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "bridge",
    "plugins": [
        {"type": "bridge", "ipMasq": True, "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in iptables, iptables-restore and plugins that log their input to ``tmp_path``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    (tmp_path / "listing").write_text(LISTING + "\n")
    _stand_in(bin_dir, "iptables", f'cat "{tmp_path}/listing"')
    _stand_in(bin_dir, "iptables-restore", f'cat >> "{log}.restore"')
    _stand_in(bin_dir, "ip6tables", "true")  # no IPv6 rules: and the host's are not read
    for plugin in ("bridge", "portmap"):
        _stand_in(
            bin_dir,
            plugin,
            f'echo "{plugin} $CNI_COMMAND $CNI_CONTAINERID netns=[$CNI_NETNS]" >> "{log}.cni"; '
            f'cat >> "{log}.{plugin}"; echo >> "{log}.{plugin}"',
        )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(cni, "RESULTS_DIR", str(results))
    return tmp_path


def test_release_runs_del_from_the_cache_then_removes_the_rule(host: Path) -> None:
    cache = host / "results" / f"bridge-{OURS}-eth0"
    cache.write_text(
        json.dumps(
            {
                "kind": "cniCacheV1",
                "containerId": OURS,
                "config": base64.b64encode(json.dumps(CONFLIST).encode()).decode(),
                "capabilityArgs": {"portMappings": [{"HostPort": 39124, "ContainerPort": 80}]},
                "result": {"cniVersion": "1.0.0", "ips": [{"address": "10.4.0.2/24"}]},
            }
        )
    )
    PodNetwork("pycri", str(host / "bin"), str(host / "no-conf")).release(OURS[6:], ["bridge"])

    # every plugin, last first, without a netns, the pod's id
    assert (host / "log.cni").read_text().splitlines() == [
        f"portmap DEL {OURS} netns=[]",
        f"bridge DEL {OURS} netns=[]",
    ]
    portmap = json.loads((host / "log.portmap").read_text())
    assert portmap["runtimeConfig"] == {"portMappings": [{"HostPort": 39124, "ContainerPort": 80}]}
    assert portmap["prevResult"]["ips"] == [{"address": "10.4.0.2/24"}]
    assert portmap["name"] == "bridge"
    assert not cache.exists()  # as libcni does after a DEL

    restore = (host / "log.restore").read_text().splitlines()
    chain = chain_name("bridge", OURS)
    assert restore[0] == "*nat"
    assert restore[-1] == "COMMIT"
    assert restore[1].startswith("-D POSTROUTING -s 10.4.0.2/32 ")
    assert restore[2:-1] == [f"-F {chain}", f"-X {chain}"]
    assert OTHER not in "\n".join(restore)


def test_release_without_a_cache_asks_the_main_plugin_only(host: Path) -> None:
    conf_dir = host / "net.d"
    conf_dir.mkdir()
    (conf_dir / "nerdctl-bridge.conflist").write_text(json.dumps(CONFLIST))
    PodNetwork("pycri", str(host / "bin"), str(conf_dir)).release(OURS[6:], ["bridge"])
    assert (host / "log.cni").read_text().splitlines() == [f"bridge DEL {OURS} netns=[]"]
    assert "prevResult" not in json.loads((host / "log.bridge").read_text())


def test_orphans_are_the_namespaces_pods_that_no_longer_exist() -> None:
    """Rules and caches of removed pods; never a live one's, nor another namespace's."""
    ours, other = OURS.removeprefix("pycri-"), OTHER.removeprefix("pycri-")
    other_namespace = f"pycri-x-{ours}"
    listing = "\n".join([LISTING, *_rules(other_namespace, "10.4.0.9")])
    chain = chain_name("bridge", OURS)
    rule = next(line for line in LISTING.splitlines() if "POSTROUTING -s 10.4.0.2" in line)
    assert cni.orphan_rules("pycri", listing, {other}) == [
        "-D" + rule[2:],
        f"-F {chain}",
        f"-X {chain}",
    ]
    assert cni.orphan_rules("pycri", listing, {other, ours}) == []
    # the other namespace sees its own pod, and not ours
    assert [line[:3] for line in cni.orphan_rules("pycri-x", listing, set())] == [
        "-D ",
        "-F ",
        "-X ",
    ]
    renamed = ours.replace("d9df", "aaaa")
    caches = [
        f"bridge-{OURS}-eth0",
        f"my-net-pycri-{renamed}-eth0",  # a network name with a dash
        f"bridge-{other_namespace}-eth0",
        f"bridge-{OTHER}-eth0",
        "unrelated-file",
    ]
    assert cni.orphan_caches("pycri", caches, {other}) == {("bridge", ours), ("my-net", renamed)}


def test_the_sweep_releases_only_the_orphans(host: Path) -> None:
    conf_dir = host / "net.d"
    conf_dir.mkdir()
    (conf_dir / "nerdctl-bridge.conflist").write_text(json.dumps(CONFLIST))
    (host / "results" / f"bridge-{OURS}-eth0").write_text("{}")  # unreadable: DEL from conf
    network = PodNetwork("pycri", str(host / "bin"), str(conf_dir))
    assert network.sweep({OTHER.removeprefix("pycri-")}) == 2  # a rule, a cache
    assert (host / "log.cni").read_text().splitlines() == [f"bridge DEL {OURS} netns=[]"]
    restore = (host / "log.restore").read_text()
    assert chain_name("bridge", OURS) in restore
    assert chain_name("bridge", OTHER) not in restore


def test_a_chain_goes_after_every_rule_that_jumps_to_it() -> None:
    """A pod whose ADD ran twice has two POSTROUTING rules into one chain (seen on a
    host: iptables-restore refused the second -D once the chain had been dropped)."""
    first, second = _rules(OURS, "10.4.0.45"), _rules(OURS, "10.4.0.46")[1]
    chain = chain_name("bridge", OURS)
    lines = cni.orphan_rules("pycri", "\n".join([*first, second]), set())
    assert lines == ["-D" + first[1][2:], "-D" + second[2:], f"-F {chain}", f"-X {chain}"]
