"""Release the CNI state nerdctl 1.7.7 leaves behind when a pod sandbox ends.

nerdctl runs CNI from OCI hooks: ADD in ``createRuntime``, DEL in
``postStop``, which runc runs when the task is deleted (``nerdctl rm``,
not ``nerdctl stop``). Its postStop calls DEL with an empty netns path
(``cni.Remove(ctx, fullID, "", ...)`` in pkg/ocihook/ocihook.go, v1.7.7 and
still so on main). The bridge plugin learns a pod's addresses only from
the pod's interface inside its netns, so with an empty path it releases the
IPAM allocation and returns: the masquerade rule in POSTROUTING and its
``CNI-<hash>`` chain stay in the nat table for good. A netns path would not
help either: postStop runs after the pause process died, its netns with it.

So on StopPodSandbox (the CRI's moment to give network resources back)
and again before ``rm``, the shim releases one pod's state and nothing else:

- DEL through the network's plugins, as libcni would: each plugin of the
  configuration cached at ADD (``/var/lib/cni/results``), last first, with
  the cached result as prevResult and the cached port mappings, without a
  netns (the pause may be gone). The IPAM plugin frees the address, portmap
  its DNAT chain, firewall its per-address rules. The cache is then
  deleted, as libcni does after a DEL, so that the hook's DEL on ``rm`` finds
  no prevResult and cannot remove rules of another pod that got the address
  meanwhile. Without a cache (DEL done already) the main plugin's DEL still
  releases an allocation the IPAM plugin may hold.
- the masquerade rules: POSTROUTING rules whose comment names exactly the
  pod (``name: "<network>" id: "<namespace>-<id>"``) and that jump to the
  chain the bridge plugin derives from that same pair, then that chain:
  what the plugin's TeardownIPMasq deletes, with the address read from the
  rule instead of from the interface. Removed in one ``iptables-restore``.

All of it is idempotent and finds nothing once done.

Pods removed before this cleanup existed (or behind the shim's back, with
``nerdctl rm -f``) left their rules and allocations for good. At start the
shim sweeps them (:meth:`PodNetwork.sweep`): every masquerade rule and
libcni cache of its own namespace whose container no longer exists is
released the same way. Containers that exist, in any state, are left to
StopPodSandbox: another server on the same namespace may be creating one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycri.errors import CRIError

__all__ = [
    "PodNetwork",
    "chain_name",
    "masquerade_comment",
    "nat_rules_of",
    "networks_of",
    "orphan_caches",
    "orphan_rules",
]

log = logging.getLogger(__name__)

#: where libcni caches each ADD (its default; go-cni and nerdctl keep it)
RESULTS_DIR = "/var/lib/cni/results"
#: nerdctl names a pod's first (only) interface so (go-cni's default prefix)
IFNAME = "eth0"
#: seconds a plugin or iptables call may take
TIMEOUT = 30.0
#: nerdctl's label listing the networks a container joined
NETWORKS_LABEL = "nerdctl/networks"
#: network modes nerdctl handles without CNI
_NOT_CNI = ("host", "none")
#: the bridge plugin's masquerade comment (see masquerade_comment)
_COMMENT = re.compile(r'^name: "(?P<network>[^"]+)" id: "(?P<cni_id>[^"]+)"$')
_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")


def chain_name(network: str, cni_id: str) -> str:
    """The bridge plugin's masquerade chain (utils.FormatChainName)."""
    return "CNI-" + hashlib.sha512((network + cni_id).encode()).hexdigest()[:24]


def masquerade_comment(network: str, cni_id: str) -> str:
    """The bridge plugin's rule comment (utils.FormatComment, Go's %q on plain names)."""
    return f"name: {json.dumps(network)} id: {json.dumps(cni_id)}"


def networks_of(labels: dict[str, str]) -> list[str]:
    """The CNI networks a container joined, from nerdctl's own label."""
    try:
        networks = json.loads(labels.get(NETWORKS_LABEL) or "[]")
    except ValueError:
        return []
    if not isinstance(networks, list):
        return []
    return [
        n
        for n in networks
        if isinstance(n, str) and n and n not in _NOT_CNI and not n.startswith("container:")
    ]


def nat_rules_of(listing: str, network: str, cni_id: str) -> tuple[list[str], bool]:
    """(the pod's POSTROUTING rules as ``-S`` prints them, whether its chain exists)."""
    chain = chain_name(network, cni_id)
    comment = masquerade_comment(network, cni_id)
    rules: list[str] = []
    chain_exists = False
    for line in listing.splitlines():
        if line == f"-N {chain}":
            chain_exists = True
            continue
        if not line.startswith("-A POSTROUTING "):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if _value(words, "--comment") == comment and _value(words, "-j") == chain:
            rules.append(line)
    return rules, chain_exists


def _orphan(namespace: str, cni_id: str, live: Collection[str]) -> str | None:
    """The container id in ``<namespace>-<id>`` when it is a whole id not in ``live``.

    A whole 64-hex id is required, so that a namespace that merely starts
    like this one (``pycri`` and ``pycri-x``) is never taken for it.
    """
    rest = cni_id.removeprefix(f"{namespace}-")
    if rest == cni_id or not _CONTAINER_ID.match(rest) or rest in live:
        return None
    return rest


def orphan_rules(namespace: str, listing: str, live: Collection[str]) -> list[str]:
    """``iptables-restore`` lines removing the masquerade rules and chains of
    ``namespace`` pods in the nat ``listing`` (``-S``) whose container is not in ``live``.

    One pass over the listing: a host with leaks has thousands of rules.
    """
    chains = {line[3:] for line in listing.splitlines() if line.startswith("-N ")}
    lines: list[str] = []
    # chains go after every rule jumping to them: a pod whose ADD ran twice has two
    removed: list[str] = []
    for line in listing.splitlines():
        if not line.startswith("-A POSTROUTING "):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        match = _COMMENT.match(_value(words, "--comment") or "")
        if not match or _orphan(namespace, match["cni_id"], live) is None:
            continue
        chain = chain_name(match["network"], match["cni_id"])
        if _value(words, "-j") != chain:
            continue  # not the bridge plugin's rule
        lines.append("-D" + line[2:])
        if chain in chains:
            removed += [f"-F {chain}", f"-X {chain}"]
            chains.discard(chain)
    return lines + removed


def orphan_caches(
    namespace: str, names: Iterable[str], live: Collection[str]
) -> set[tuple[str, str]]:
    """(network, container id) of libcni cache files of ``namespace`` pods not in ``live``."""
    pattern = re.compile(
        rf"^(?P<network>.+)-(?P<cni_id>{re.escape(namespace)}-[0-9a-f]{{64}})-{IFNAME}$"
    )
    found: set[tuple[str, str]] = set()
    for name in names:
        match = pattern.match(name)
        if match and (pod := _orphan(namespace, match["cni_id"], live)):
            found.add((match["network"], pod))
    return found


def _value(words: Sequence[str], flag: str) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word == flag:
            return words[i + 1]
    return None


@dataclass(frozen=True)
class _Conf:
    """A CNI network's configuration: its name, version and plugins (the first is "main")."""

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]

    @property
    def main(self) -> dict[str, Any]:
        return self.plugins[0]

    @property
    def masquerades(self) -> bool:
        return bool(self.main.get("ipMasq"))

    @property
    def families(self) -> list[str]:
        """iptables binaries the bridge plugin used: by the address families of its ranges."""
        families = ["iptables"]
        if any(":" in subnet for subnet in _subnets(self.main.get("ipam") or {})):
            families.append("ip6tables")
        return families


def _subnets(ipam: dict[str, Any]) -> list[str]:
    subnets = [str(ipam.get("subnet") or "")]
    for range_set in ipam.get("ranges") or []:
        for entry in range_set or []:
            if isinstance(entry, dict):
                subnets.append(str(entry.get("subnet") or ""))
    return subnets


def _parse_conf(data: object) -> _Conf | None:
    """A .conflist (or single-plugin .conf) document."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    plugins = data.get("plugins") if "plugins" in data else [data]
    if not isinstance(plugins, list) or not plugins:
        return None
    if not all(isinstance(p, dict) for p in plugins):
        return None
    return _Conf(data["name"], str(data.get("cniVersion") or "0.4.0"), [dict(p) for p in plugins])


def _load_conf(netconfpath: str, network: str) -> _Conf | None:
    """The configuration file of ``network`` in ``netconfpath`` (None when there is none)."""
    directory = Path(netconfpath)
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".conflist", ".conf", ".json"):
            continue
        try:
            conf = _parse_conf(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        if conf is not None and conf.name == network:
            return conf
    return None


def _load_cache(path: Path) -> tuple[_Conf, dict[str, Any]] | None:
    """libcni's cache of an ADD: (the configuration used then, the whole record)."""
    try:
        record = json.loads(path.read_text())
        conf = _parse_conf(json.loads(base64.b64decode(record["config"])))
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    if conf is None or not isinstance(record, dict):
        return None
    return conf, record


class PodNetwork:
    """Releases one pod sandbox's CNI state (see the module docstring)."""

    def __init__(self, namespace: str, cni_path: str, netconfpath: str) -> None:
        self.namespace = namespace
        self.cni_path = cni_path
        self.netconfpath = netconfpath

    def cni_id(self, pod_id: str) -> str:
        """The container id nerdctl gives CNI: ``<namespace>-<id>``."""
        return f"{self.namespace}-{pod_id}"

    def cache_path(self, network: str, cni_id: str) -> Path:
        """libcni's record of the ADD: configuration, result, capability arguments."""
        return Path(RESULTS_DIR) / f"{network}-{cni_id}-{IFNAME}"

    def release(self, pod_id: str, networks: Sequence[str]) -> None:
        """Give back the pod's IP allocations and remove its rules (see the module docstring).

        Raises CRIError when a plugin or iptables fails, so the kubelet
        calls again rather than the state leaking silently.
        """
        cni_id = self.cni_id(pod_id)
        for network in networks:
            cache = self.cache_path(network, cni_id)
            cached = _load_cache(cache)
            conf = cached[0] if cached is not None else _load_conf(self.netconfpath, network)
            if conf is None:
                log.warning(
                    "no CNI configuration for network %r (cache or %s): pod %s's address and "
                    "rules on it cannot be released",
                    network,
                    self.netconfpath,
                    pod_id[:13],
                )
                continue
            if conf.masquerades:
                for family in conf.families:
                    self._remove_masquerade(family, network, cni_id)
            if cached is not None:
                self._delete_cached(cached, cni_id)
                cache.unlink(missing_ok=True)  # as libcni does after a DEL
            else:
                self._delete(conf.main, conf, cni_id)

    def sweep(self, live: Collection[str]) -> int:
        """Release what pods of this namespace that no longer exist left behind.

        ``live``: the ids of every container of the namespace, in any state.
        Returns how many rules and caches went. Failures are logged: a sweep
        never stops the shim from starting.
        """
        swept = 0
        try:
            for family in ("iptables", "ip6tables"):
                binary = shutil.which(family)
                restore = shutil.which(f"{family}-restore")
                if binary is None or restore is None:
                    continue
                listing = _run([binary, "-w", "-t", "nat", "-S"], f"{family} -t nat -S")
                lines = orphan_rules(self.namespace, listing, live)
                if lines:
                    script = "\n".join(["*nat", *lines, "COMMIT", ""])
                    _run([restore, "-w", "--noflush"], f"{family}-restore (sweep)", script)
                    swept += sum(line.startswith("-D ") for line in lines)
            try:
                caches = os.listdir(RESULTS_DIR)
            except OSError:
                caches = []
            for network, pod_id in sorted(orphan_caches(self.namespace, caches, live)):
                self.release(pod_id, [network])  # DEL frees the address the cache holds
                swept += 1
        except CRIError as err:
            log.warning("cannot release the CNI state of removed pods: %s", err.message)
        if swept:
            log.info("released %d CNI rule(s) and cache(s) of removed pods", swept)
        return swept

    def _delete_cached(self, cached: tuple[_Conf, dict[str, Any]], cni_id: str) -> None:
        conf, record = cached
        capabilities = record.get("capabilityArgs") or {}
        args = [(str(k), str(v)) for k, v in record.get("cniArgs") or []]
        for plugin in reversed(conf.plugins):
            runtime_config = {
                name: capabilities[name]
                for name, wanted in (plugin.get("capabilities") or {}).items()
                if wanted and name in capabilities
            }
            netconf = dict(plugin)
            if record.get("result") is not None:
                netconf["prevResult"] = record["result"]
            if runtime_config:
                netconf["runtimeConfig"] = runtime_config
            self._delete(netconf, conf, cni_id, args)

    def _delete(
        self,
        plugin: dict[str, Any],
        conf: _Conf,
        cni_id: str,
        args: Sequence[tuple[str, str]] = (),
    ) -> None:
        """DEL of one plugin, no netns."""
        plugin_type = str(plugin.get("type") or "")
        binary = Path(self.cni_path) / plugin_type
        if not plugin_type or "/" in plugin_type or not binary.is_file():
            raise CRIError(f"CNI plugin {plugin_type!r} of network {conf.name!r} not found")
        netconf = {**plugin, "name": conf.name, "cniVersion": conf.cni_version}
        env = {
            "CNI_COMMAND": "DEL",
            "CNI_CONTAINERID": cni_id,
            "CNI_NETNS": "",
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": self.cni_path,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        if args:
            env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in args)
        _run([str(binary)], f"CNI DEL ({plugin_type}) of {cni_id[:19]}", json.dumps(netconf), env)

    def _remove_masquerade(self, family: str, network: str, cni_id: str) -> None:
        binary = shutil.which(family)
        restore = shutil.which(f"{family}-restore")
        if binary is None or restore is None:
            return  # without iptables the bridge plugin could not have masqueraded
        # a concurrent stop of the same pod may win the race: list again once
        for attempt in (1, 2):
            listing = _run([binary, "-w", "-t", "nat", "-S"], f"{family} -t nat -S")
            rules, chain_exists = nat_rules_of(listing, network, cni_id)
            if not rules and not chain_exists:
                return
            chain = chain_name(network, cni_id)
            lines = ["*nat", *("-D" + rule[2:] for rule in rules)]
            if chain_exists:
                lines += [f"-F {chain}", f"-X {chain}"]
            lines.append("COMMIT")
            try:
                _run(
                    [restore, "-w", "--noflush"],
                    f"{family}-restore (masquerade of {cni_id[:19]})",
                    "\n".join(lines) + "\n",
                )
                return
            except CRIError:
                if attempt == 2:
                    raise


def _run(argv: list[str], what: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    try:
        result = subprocess.run(
            argv,
            input=stdin.encode(),
            capture_output=True,
            timeout=TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CRIError(f"{what} did not finish within {TIMEOUT:g}s") from None
    except OSError as err:
        raise CRIError(f"{what}: {err}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise CRIError(f"{what} failed (exit {result.returncode}): {detail}")
    return result.stdout.decode(errors="replace")


def network_problem(cni_path: str, netconfpath: str, network: str) -> str | None:
    """Why pods could not get a network, judged from files (no process)."""
    for plugin in ("bridge", "host-local", "portmap"):
        if not os.access(Path(cni_path) / plugin, os.X_OK):
            return f"CNI plugin {plugin!r} not found in {cni_path}"
    if network == "bridge":
        return None  # nerdctl writes its default network's config itself
    for conf in Path(netconfpath).glob("*.conf*"):
        try:
            if json.loads(conf.read_text()).get("name") == network:
                return None
        except (OSError, ValueError):
            continue
    return f"no CNI network {network!r} in {netconfpath}"
