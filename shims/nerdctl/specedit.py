"""OCI spec fields nerdctl cannot set, applied by a small runc wrapper.

nerdctl 1.7 has no flag for a container's masked and read-only paths (the
CRI's ``masked_paths``/``readonly_paths``, and the unmasked /proc of a
privileged container), so it always gives containerd's defaults; nor for
SupplementalGroupsPolicy Strict: it always adds the groups the image's
/etc/group gives the user, to the container's spec and to every exec's
process (``nerdctl exec`` takes the process from containerd's stored spec,
not from the bundle, and hands it to ``runc exec --process <file>``). nerdctl
does copy container labels into the OCI spec's annotations, and takes any
runc-compatible binary as ``--runtime``: containers that need more are
created with pycri's labels naming the paths and ``--runtime`` pointing at
the wrapper below, which writes them into ``config.json`` at ``runc create``
and hands every call on to runc unchanged (the way GPU runtimes extend
runc). For Strict it also rewrites ``process.user.additionalGids``, of the
bundle at ``runc create`` and of the process file at ``runc exec`` (runc
runs in the bundle, whose config.json has the annotations). Containers with
the defaults, the common case, never see it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pycri.core.security import SecuritySpec
from pycri.errors import InvalidArgumentError, UnavailableError

__all__ = ["STRICT_GROUPS", "install_wrapper", "spec_labels"]

#: what containerd (and so nerdctl) masks and makes read-only by default; the
#: kubelet sends the same lists for a container with the default /proc mount
DEFAULT_MASKED = frozenset(
    {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    }
)
DEFAULT_READONLY = frozenset(
    {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)
#: label (pycri extra) -> the spec's ``linux`` field it fills
FIELDS = {"masked-paths": "maskedPaths", "readonly-paths": "readonlyPaths"}
#: label (pycri extra) of a Strict container: its supplemental_groups, as JSON
STRICT_GROUPS = "strict-groups"
#: a label's value must stay whole (labels over 4 KiB are split into pieces)
_MAX_JSON = 3000


def spec_labels(spec: SecuritySpec) -> dict[str, str]:
    """pycri extras asking the wrapper for what nerdctl would get wrong ({} if none).

    Paths: None in the spec is the runtime's default list, which nerdctl
    gives by itself; a privileged container's spec has none at all (/proc
    unmasked, as containerd's CRI does). Groups: Strict's exact list (Merge
    is what nerdctl does by itself).
    """
    wanted: dict[str, list[str]] = {}
    for key, given, default in (
        ("masked-paths", spec.masked_paths, DEFAULT_MASKED),
        ("readonly-paths", spec.readonly_paths, DEFAULT_READONLY),
    ):
        if given is not None and set(given) != default:
            wanted[key] = list(given)
    labels: dict[str, str] = {}
    for key, paths in wanted.items():
        if any(not path.startswith("/") for path in paths):
            raise InvalidArgumentError(f"{key}: every path must be absolute, got {paths!r}")
        text = json.dumps(paths, separators=(",", ":"))
        if len(text) > _MAX_JSON:
            raise InvalidArgumentError(f"{key}: more than {_MAX_JSON} bytes of paths")
        labels[key] = text
    if spec.strict_groups:
        text = json.dumps(list(spec.supplemental_groups), separators=(",", ":"))
        if len(text) > _MAX_JSON:
            raise InvalidArgumentError(f"supplemental_groups: more than {_MAX_JSON} bytes")
        labels[STRICT_GROUPS] = text
    return labels


# Runs for every runc call of a wrapped container (as root, by containerd's
# shim): the standard library only, no site packages, and out of the way fast.
_WRAPPER = '''#!{python} -IS
"""pycri: runc, with the paths pycri's labels name written into config.json at create."""
import json
import os
import sys

RUNC = {runc!r}
FIELDS = {fields!r}
GROUPS = "io.pycri." + {groups!r}


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, data):
    with open(path + ".pycri", "w") as f:
        json.dump(data, f)
    os.replace(path + ".pycri", path)


def strict(user, notes):
    # pycri.core.identity.process_groups(Strict): the primary gid, then the pod's groups
    groups = [user.get("gid", 0)] + json.loads(notes[GROUPS])
    user["additionalGids"] = list(dict.fromkeys(groups))


def edit(bundle):
    path = os.path.join(bundle, "config.json")
    spec = load(path)
    notes = spec.get("annotations") or {{}}
    found = {{field: json.loads(notes["io.pycri." + key])
             for key, field in FIELDS.items() if "io.pycri." + key in notes}}
    if not found and GROUPS not in notes:
        return
    if found:
        spec.setdefault("linux", {{}}).update(found)
    if GROUPS in notes:
        strict(spec.setdefault("process", {{}}).setdefault("user", {{}}), notes)
    save(path, spec)


def edit_exec(process_file):
    # containerd's shim runs runc in the bundle: its config.json has the annotations
    try:
        notes = load("config.json").get("annotations") or {{}}
    except OSError:
        return
    if GROUPS in notes:
        process = load(process_file)
        strict(process.setdefault("user", {{}}), notes)
        save(process_file, process)


def option(rest, names, default):
    for i, arg in enumerate(rest):
        if arg in names and i + 1 < len(rest):
            return rest[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return default


args = sys.argv[1:]
if "create" in args:
    edit(option(args[args.index("create") + 1:], ("--bundle", "-b"), "."))
elif "exec" in args:
    process_file = option(args[args.index("exec") + 1:], ("--process", "-p"), None)
    if process_file:
        edit_exec(process_file)
os.execv(RUNC, [RUNC] + args)
'''


def install_wrapper(directory: str, runc: str = "runc") -> str:
    """Write the wrapper into ``directory`` (root's, 0700) and return its path."""
    real = shutil.which(runc) or shutil.which(runc, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if real is None:
        raise UnavailableError(
            f"runc ({runc!r}) not found: needed for masked/read-only paths, Strict groups"
        )
    text = _WRAPPER.format(python=sys.executable, runc=real, fields=FIELDS, groups=STRICT_GROUPS)
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        # root runs what is in there: nobody else may be able to put it there
        raise UnavailableError(f"{folder} must be ours and writable by us alone")
    # named by its content, never rewritten: containerd calls the wrapper a container
    # was created with for all its runc calls (exec, kill, delete), and another pycri
    # (version) on the host must not swap it under that container
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    target = folder / f"runc-wrapper-{digest}"
    if target.exists() and target.read_text() == text:
        return str(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".runc-wrapper.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o700)  # executed by containerd's shim, as root
    os.replace(tmp, target)
    return str(target)
