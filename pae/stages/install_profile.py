"""The install-profile command: install one of pae's snakemake profiles (pae/profiles/: slurm, local) as a named
profile where snakemake looks for one, so that `snakemake --profile NAME` works from any directory, with a site's
changes merged into it.

Why merge here: snakemake's own `--set-resources RULE:KEY=VALUE` on the command line replaces the profile's whole
`set-resources` (every rule's entries, not only RULE's), and `--default-resources` its whole `default-resources`. Here
an override changes that one key and keeps the rest of the profile. Overrides are checked before anything is written:
rule names against the workflow's rules, resource keys against pae's job resources (pae.launch.Job), values against
their types, each changed rule's job with Job.from_dict, and top-level keys against snakemake's options.

Where: snakemake 9 (snakemake.cli.get_profile_dir) looks for `--profile NAME` in the working directory, then in
platformdirs' user config folder ($XDG_CONFIG_HOME/snakemake, else ~/.config/snakemake on Linux), then the site one
(the first of $XDG_CONFIG_DIRS, else /etc/xdg/snakemake); it reads NAME/config.yaml (or profile.yaml). The profile
goes to the user folder unless --dir says otherwise.
"""
from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import difflib
import re
import shlex
from pathlib import Path
from typing import Any

from pae.io import PaeError

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
# The workflow's rule files when pae runs from a checkout (an installed wheel has none: the packaged slurm profile's
# set-resources, which names every rule, stands in; tests/stages/test_install_profile.py keeps the two equal).
RULE_FILES = Path(__file__).resolve().parents[2] / "workflow" / "rules"
# Job fields each rule sets itself (name, folder; threads from its `threads:`; snakemake's attempt), so no resource
# of a profile.
RULE_SET = ("name", "folder", "threads", "attempt")
# Top-level keys whose values are the mappings the other options change.
MAPPINGS = {"default-resources": "--default-resources", "set-resources": "--set-resources"}
# snakemake's names of a profile's main file (snakemake.cli.get_profile_dir): another one beside ours would be read.
PROFILE_FILE = re.compile(r"(profile|config)(\.v\d+\+)?\.yaml")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("name", nargs="?", help="the profile's name, used as `snakemake --profile NAME` (default: the "
                   "name of --from)")
    p.add_argument("--from", dest="source", default="slurm", metavar="slurm|local|PATH",
                   help="pae's profile to start from, or a profile folder or file of your own (default: slurm)")
    p.add_argument("--set-resources", nargs="+", default=[], metavar="RULE:KEY=VALUE",
                   help="change one resource of one rule's job, keeping the rule's others, e.g. train:nodes=2 "
                   "train:slurm_partition=gpu")
    p.add_argument("--default-resources", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change one resource of every rule's job, e.g. slurm_account=myproject")
    p.add_argument("--set", dest="settings", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a snakemake option of the profile, e.g. cores=64 (keys: snakemake's long options)")
    p.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    p.add_argument("--no-sinfo", dest="cluster", action="store_false",
                   help="write the profile without fitting it to this cluster's partitions (by default, where sinfo "
                   "answers, the slurm rules' CPUs per task, mem_mb and nodes are capped at what the partition they "
                   "go to has, and each change is printed)")
    p.add_argument("--dir", type=Path, help="the folder that gets NAME/config.yaml (default: snakemake's user "
                   f"profile folder, {profile_dirs()[0]} here)")


def run(a: argparse.Namespace) -> None:
    path, changed = install_profile(a.name, a.source, a.set_resources, a.default_resources, a.settings, a.force,
                                    a.dir, cluster=a.cluster)
    print(f"{'wrote' if changed else 'unchanged (already installed)'}: {path}")
    name = path.parent.name
    found = path.parent.parent.resolve() in [Path(d).resolve() for d in profile_dirs()]
    print(f"use it: snakemake --profile {shlex.quote(name if found else str(path.parent))}")
    if found and (Path.cwd() / name).is_dir():
        print(f"note: in {Path.cwd()}, snakemake takes ./{name} instead (it looks in the working directory first)")


# ------------------------------------------------------------------------------------------------ what is known


def profile_dirs() -> tuple[str, str]:
    """snakemake's user and site profile folders, in the order it searches them after the working directory: the
    call snakemake.common.get_appdirs makes (not that function itself: it caches its answer for the process)."""
    from platformdirs import AppDirs

    dirs = AppDirs("snakemake", "snakemake")
    return dirs.user_config_dir, dirs.site_config_dir


def packaged_profiles() -> list[str]:
    return sorted(p.parent.name for p in PROFILES.glob("*/config.yaml"))


def workflow_rules() -> list[str]:
    """The rules whose resources a profile can set: those of workflow/rules/*.smk where the workflow is beside the
    package, and those the packaged slurm profile names."""
    import yaml

    rules = set(yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())["set-resources"])
    for smk in RULE_FILES.glob("*.smk"):
        rules.update(re.findall(r"^(?:rule|checkpoint)\s+(\w+)\s*:", smk.read_text(), flags=re.M))
    return sorted(rules)


def resource_keys() -> dict[str, type]:
    """The resources of a rule's job and their types: pae's launcher, and pae.launch.Job's fields (snakemake's
    runtime and mem_mb among them) but those each rule sets itself."""
    from pae.launch import Job

    keys: dict[str, type] = {"launcher": str, "runtime": int, "mem_mb": int}
    for f in dataclasses.fields(Job):
        if f.name not in RULE_SET:
            keys[f.name] = type(f.default) if f.default is not dataclasses.MISSING else str
    return keys


def snakemake_options() -> set[str]:
    """snakemake's long options without the dashes: the keys a profile may hold."""
    from snakemake.cli import get_argument_parser

    return {s[2:] for s in get_argument_parser()._option_string_actions if s.startswith("--")}


def _unknown(where: str, what: str, value: str, known) -> PaeError:
    return PaeError(f"install-profile: {where}unknown {what} {value!r}; known: {', '.join(sorted(known))}")


# ----------------------------------------------------------------------------------------------- the overrides


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not (sep and key.strip() and value.strip()):
        raise PaeError(f"install-profile: {option} expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _unquote(text: str) -> str:
    """'multi', "multi" and multi all mean the string multi."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, str):
            return value
    return text


def resource_value(key: str, text: str, where: str) -> int | float | str:
    """A resource override as the profile writes it: a number stays a number; a string becomes the quoted Python
    expression snakemake evaluates ("'multi'" in YAML, like the profile's slurm_partition: "''")."""
    keys = resource_keys()
    kind = keys[key]
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise PaeError(f"install-profile: {where}{key}={text!r} is not true or false")
        return "True" if text.lower() == "true" else "False"
    if kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise PaeError(f"install-profile: {where}{key}={text!r} is not {what}") from None
        if value < 0:
            raise PaeError(f"install-profile: {where}{key}={text!r} is negative")
        return value
    value = _unquote(text)
    if key == "launcher":
        from pae.launch import LAUNCHERS

        if value not in LAUNCHERS:
            raise PaeError(f"install-profile: {where}launcher={text!r}: not one of {', '.join(sorted(LAUNCHERS))}")
    return repr(value)


def setting_value(key: str, text: str) -> Any:
    """A top-level option's value, read as YAML reads it (cores=64 -> 64, keep-going=false -> False)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)) or value is None:
        raise PaeError(f"install-profile: --set {key}={text!r}: give one value (a number, true/false or a word)")
    return value


def parse_overrides(set_resources=(), default_resources=(), settings=()) -> list[tuple[tuple[str, ...], Any, str]]:
    """The overrides as (path in the profile, value as the profile writes it, the override as given), checked."""
    out = []
    if settings:
        options = snakemake_options()
        for item in settings:
            key, text = _key_value(item, "--set")
            if key in MAPPINGS:
                raise PaeError(f"install-profile: --set {key}=...: use {MAPPINGS[key]} to change one of its entries")
            if key in ("profile", "workflow-profile"):
                raise PaeError(f"install-profile: --set {key}: a profile cannot name another profile")
            if key not in options and key.replace("_", "-") in options:
                key = key.replace("_", "-")
            if key not in options:
                near = difflib.get_close_matches(key, options, n=5)
                raise PaeError(f"install-profile: --set {key}: not an option of snakemake (a profile's top-level keys "
                               f"are snakemake's long options, see snakemake --help)"
                               + (f"; did you mean {', '.join(near)}?" if near else ""))
            out.append(((key,), setting_value(key, text), f"{key}={text}"))
    keys = resource_keys()
    for item in default_resources:
        key, text = _key_value(item, "--default-resources")
        if key not in keys:
            raise _unknown(f"--default-resources {item}: ", "resource", key, keys)
        out.append((("default-resources", key), resource_value(key, text, "--default-resources "),
                    f"{key}={text}"))
    rules = None
    for item in set_resources:
        rule, sep, assignment = item.partition(":")
        if not (sep and rule):
            raise PaeError(f"install-profile: --set-resources expects RULE:KEY=VALUE, got {item!r}")
        rules = rules or workflow_rules()
        if rule not in rules:
            raise _unknown(f"--set-resources {item}: ", "rule", rule, rules)
        key, text = _key_value(assignment, "--set-resources")
        if key not in keys:
            raise _unknown(f"--set-resources {item}: ", "resource", key, keys)
        out.append((("set-resources", rule, key), resource_value(key, text, f"--set-resources {rule}:"),
                    f"{rule}:{key}={text}"))
    return out


def merge(profile: dict, overrides) -> dict:
    """The profile with the overrides in: each changes its one key."""
    merged = copy.deepcopy(profile)
    for path, value, _ in overrides:
        node = merged
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = {}
            if not isinstance(node[key], dict):
                raise PaeError(f"install-profile: the profile's {key} is not a mapping (KEY: VALUE lines); "
                               "install-profile merges into that form only")
            node = node[key]
        node[path[-1]] = value
    return merged


def check_jobs(profile: dict, overrides) -> None:
    """Each rule's job whose resources the overrides change, read as the workflow will (pae.launch.Job.from_dict):
    defaults, then the rule's entries. String values are snakemake's Python expressions: literals are checked,
    other expressions (and strings where a number goes: snakemake's "2h" runtimes) left to snakemake."""
    from pae.launch import LAUNCHERS, Job

    keys = resource_keys()
    defaults, per_rule = (profile.get(key) if isinstance(profile.get(key), dict) else {} for key in MAPPINGS)
    changed = {p[1] for p, _, _ in overrides if p[0] == "set-resources"}
    if any(p[0] == "default-resources" for p, _, _ in overrides):
        changed |= set(per_rule) | {"(default-resources)"}
    for rule in sorted(changed):
        spec = {}
        entry = per_rule.get(rule)
        for key, value in {**defaults, **(entry if isinstance(entry, dict) else {})}.items():
            if key not in keys:
                continue
            if isinstance(value, str):
                try:
                    value = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    continue
                if keys[key] is not str and isinstance(value, str):
                    continue
            spec[key] = value
        where = "default-resources" if rule == "(default-resources)" else f"rule {rule}"
        launcher = spec.pop("launcher", "local")
        if launcher not in LAUNCHERS:
            raise PaeError(f"install-profile: {where}: launcher {launcher!r} is not one of "
                           f"{', '.join(sorted(LAUNCHERS))}")
        try:
            Job.from_dict(spec)
        except PaeError as e:
            raise PaeError(f"install-profile: {where}: {e}") from None


# ------------------------------------------------------------------------------------- fitting it to the cluster


@dataclasses.dataclass(frozen=True)
class Partition:
    """What one of a cluster's partitions offers a job: its nodes, and the largest node's CPUs and memory (MB), less
    the partition's own per-node limits."""
    name: str
    nodes: int
    cpus: int
    mem_mb: int
    default: bool = False


def cluster_partitions() -> dict[str, Partition] | None:
    """The partitions of the cluster this machine submits to, from sinfo (one line per node and partition) and
    scontrol (MaxNodes, MaxCPUsPerNode, MaxMemPerNode); None where sinfo is absent or does not answer."""
    import shutil
    import subprocess

    if shutil.which("sinfo") is None:
        return None
    try:
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%N|%c|%m"], capture_output=True, text=True,
                               timeout=60)
        limits = subprocess.run(["scontrol", "show", "partition", "-o"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if nodes.returncode != 0:
        return None
    found: dict[str, dict] = {}
    for line in nodes.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 4:
            continue
        name, node, cpus, mem = parts
        p = found.setdefault(name.rstrip("*"), {"nodes": set(), "cpus": 0, "mem_mb": 0, "default": name.endswith("*")})
        p["nodes"].add(node)
        p["cpus"] = max(p["cpus"], int(cpus.rstrip("+")) if cpus.rstrip("+").isdigit() else 0)
        p["mem_mb"] = max(p["mem_mb"], int(mem.rstrip("+")) if mem.rstrip("+").isdigit() else 0)
    partitions = {}
    for name, p in found.items():
        line = next((x for x in limits.stdout.splitlines() if x.startswith(f"PartitionName={name} ")), "")
        limit = {k: int(v) for k, v in re.findall(r"\b(MaxNodes|MaxCPUsPerNode|MaxMemPerNode)=(\d+)", line)}
        partitions[name] = Partition(name, min(len(p["nodes"]), limit.get("MaxNodes", len(p["nodes"]))),
                                     min(p["cpus"], limit.get("MaxCPUsPerNode", p["cpus"])),
                                     min(p["mem_mb"], limit.get("MaxMemPerNode", p["mem_mb"])), p["default"])
    return partitions or None


def workflow_threads() -> dict[str, int]:
    """Each rule's `threads:` in workflow/rules/*.smk (1 where it sets none); empty where the workflow is not beside
    the package."""
    threads = {}
    for smk in RULE_FILES.glob("*.smk"):
        for block in re.split(r"^(?=(?:rule|checkpoint)\s+\w+\s*:)", smk.read_text(), flags=re.M):
            rule = re.match(r"(?:rule|checkpoint)\s+(\w+)\s*:", block)
            if rule:
                found = re.search(r"^\s+threads:\s*(\d+)", block, flags=re.M)
                threads[rule.group(1)] = int(found.group(1)) if found else 1
    return threads


def _literal(value):
    """A resource as snakemake reads it: "'debug'" -> 'debug', 16000 -> 16000; None for another expression."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    return value


def _rule_specs(profile: dict) -> list[dict]:
    """The resources of every rule's job as the profile gives them (default-resources, then the rule's entry)."""
    defaults, per_rule = (profile.get(key) if isinstance(profile.get(key), dict) else {} for key in MAPPINGS)
    return [{**defaults, **(per_rule.get(rule) if isinstance(per_rule.get(rule), dict) else {})}
            for rule in workflow_rules()]


def fit(profile: dict, overrides, partitions: dict[str, Partition]) -> list[tuple[tuple[str, ...], int, str]]:
    """What makes each slurm-launched rule's job fit the partition it goes to: CPUs per task (snakemake's
    set-threads; the rule's threads by default) at most the largest node's CPUs over the tasks per node, mem_mb at
    most its memory, nodes at most the partition's. Returns overrides (path, value, why) for the profile's values
    that ask for more; a value given on this command line that asks for more, a partition the cluster has not and
    more tasks per node than a node has CPUs are refused (PaeError)."""
    defaults, per_rule = (profile.get(key) if isinstance(profile.get(key), dict) else {} for key in MAPPINGS)
    set_threads = profile.get("set-threads") if isinstance(profile.get("set-threads"), dict) else {}
    given = {p for p, _, _ in overrides}
    default = next((p for p in partitions.values() if p.default), None)
    threads = workflow_threads()
    changes = []
    for rule in workflow_rules():
        entry = per_rule.get(rule) if isinstance(per_rule.get(rule), dict) else {}
        spec = {key: _literal(value) for key, value in {**defaults, **entry}.items()}
        if spec.get("launcher", "local") != "slurm":
            continue

        def source(key):  # the override on this command line that set the rule's value, if one did
            if ("set-resources", rule, key) in given:
                return f"--set-resources {rule}:{key}"
            return f"--default-resources {key}" if key not in entry and ("default-resources", key) in given else None

        name = spec.get("slurm_partition") or (default.name if default else "")
        part = partitions.get(name)
        if part is None:
            raise PaeError(f"install-profile: rule {rule}: partition {name or '(the default)'!r} is not one of this "
                           f"cluster's ({', '.join(sorted(partitions))}, sinfo); name one of them, or pass --no-sinfo "
                           "to write the profile without checking it against this cluster")
        offers = {"nodes": f"partition {part.name} has {part.nodes} node(s)",
                  "mem_mb": f"partition {part.name}'s largest node has {part.mem_mb} MB",
                  "cpus": f"partition {part.name}'s largest node has {part.cpus} CPUs"}
        for key, most in (("nodes", part.nodes), ("mem_mb", part.mem_mb)):
            value = spec.get(key)
            if isinstance(value, int) and value > most:
                if source(key):
                    raise PaeError(f"install-profile: {source(key)}={value} asks for more than the cluster has: "
                                   f"{offers[key]}")
                changes.append((("set-resources", rule, key), most,
                                f"{rule}: {key} {value} -> {most} ({offers[key]})"))
        tasks = spec.get("tasks_per_node") if isinstance(spec.get("tasks_per_node"), int) else 1
        if tasks > part.cpus:
            raise PaeError(f"install-profile: rule {rule}: tasks_per_node={tasks} does not fit: {offers['cpus']}")
        asked = set_threads.get(rule, threads.get(rule))
        if isinstance(asked, int) and asked * tasks > part.cpus:
            most = part.cpus // tasks
            changes.append((("set-threads", rule), most, f"{rule}: CPUs per task {asked} -> {most} ({offers['cpus']}"
                            + (f", for {tasks} tasks)" if tasks > 1 else ")")))
    return changes


# --------------------------------------------------------------------------------- the file, comments kept


def render(base_text: str, base: dict, overrides, header: str, source: Path) -> str:
    """The profile's text with the overrides merged in, through ruamel.yaml's round trip: the lines it does not
    change stay as they were (comments, blank lines, quoting, flow mappings); a changed value keeps its line's
    comment (in its column, or a space after a longer value); a new key goes at the end of its mapping (after the
    comment lines that close it), a new mapping at the end of its parent. Strings are written double-quoted, the
    profiles' style for snakemake's Python expressions ("'slurm'")."""
    import io

    import yaml
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    rt = YAML()  # typ="rt", the round trip
    rt.preserve_quotes = True
    rt.width = 4096  # long lines stay as they are, not folded
    try:
        doc = rt.load(base_text)
    except YAMLError as e:  # a MarkedYAMLError says what and where; its str() spans a dozen lines
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise PaeError(f"install-profile: {source}{where}: ruamel.yaml cannot read it: {problem}") from None
    doc = CommentedMap() if doc is None else doc
    for path, value, _ in overrides:
        node = doc
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = CommentedMap()
            node = node[key]  # a mapping: merge() has refused anything else
        node[path[-1]] = DoubleQuotedScalarString(value) if isinstance(value, str) else value
    out = io.StringIO()
    rt.dump(doc, out)
    text = out.getvalue()
    # snakemake reads profiles with PyYAML (YAML 1.1), ruamel.yaml writes YAML 1.2: what snakemake will read is
    # checked against the merged profile
    if yaml.safe_load(text) != merge(base, overrides):
        raise PaeError(f"install-profile: {source}: the profile written with the overrides would not read as the "
                       "original with them merged in (ruamel.yaml's round trip changed a value); edit a copy of it "
                       "by hand instead")
    return header + text.rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------------------------ the body


def _source(source: str) -> tuple[Path, str]:
    """The profile file to start from and how the header names it."""
    if source in packaged_profiles():
        return PROFILES / source / "config.yaml", f"pae's profile {source} (pae/profiles/{source}/config.yaml)"
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if PROFILE_FILE.fullmatch(p.name))
        if not files:
            raise PaeError(f"install-profile: {path} holds no config.yaml (or profile.yaml)")
        path = files[-1]
    if not path.is_file():
        raise PaeError(f"install-profile: --from {source}: neither one of pae's profiles "
                       f"({', '.join(packaged_profiles())}) nor a profile folder or file")
    return path, f"the profile {path.resolve()}"


def install_profile(name: str | None = None, source: str = "slurm", set_resources=(), default_resources=(),
                    settings=(), force: bool = False, folder: Path | None = None,
                    cluster: bool = False) -> tuple[Path, bool]:
    """Write FOLDER/NAME/config.yaml, the profile `source` with the overrides merged in; returns its path and
    whether it was written (False: the same profile was there already). cluster: fit the slurm rules' jobs to the
    partitions of the cluster sinfo answers for (fit), printing each change."""
    import yaml

    from pae import __version__
    from pae.io import atomic_path

    src, described = _source(source)
    if name is None:
        name = (source if source in packaged_profiles()
                else src.resolve().parent.name if PROFILE_FILE.fullmatch(src.name) else src.stem)
    if not name or "/" in name or name in (".", ".."):
        raise PaeError(f"install-profile: NAME {name!r} must be a plain folder name (use --dir for the folder)")
    overrides = parse_overrides(set_resources, default_resources, settings)
    base_text = src.read_text()
    base = yaml.safe_load(base_text) or {}
    if not isinstance(base, dict):
        raise PaeError(f"install-profile: {src} is not a profile (a YAML mapping)")
    check_jobs(merge(base, overrides), overrides)
    fitted = []
    if cluster and any(_literal(spec.get("launcher")) == "slurm" for spec in _rule_specs(merge(base, overrides))):
        partitions = cluster_partitions()
        if partitions is None:
            print("note: sinfo does not answer here, so the profile is not fitted to a cluster's nodes (CPUs per "
                  "task, memory, nodes): install it where sinfo answers, or check it against your cluster")
        else:
            fitted = fit(merge(base, overrides), overrides, partitions)
            for _, _, why in fitted:
                print(f"fitted to this cluster: {why}")

    given = [("--set", [o for p, _, o in overrides if len(p) == 1]),
             ("--default-resources", [o for p, _, o in overrides if p[0] == "default-resources"]),
             ("--set-resources", [o for p, _, o in overrides if p[0] == "set-resources"])]
    options = [f"{flag} {shlex.join(items)}" for flag, items in given if items]
    command = shlex.join(["python", "-m", "pae", "install-profile", name]
                         + ([] if source == "slurm" else ["--from", source])
                         + ([] if folder is None else ["--dir", str(folder)]))
    header = "".join([f"# Generated by pae install-profile (pae {__version__}) from {described}"
                      + (", with\n" if options else ".\n" if fitted else ", unchanged.\n"),
                      *(f"#   {o}\n" for o in options),
                      "# To change it, edit it, or run the command again with other values and --force:\n",
                      f"#   {' '.join([command, *options])} --force\n",
                      *(["# Fitted to this cluster's partitions (sinfo; --no-sinfo does not):\n"]
                        + [f"#   {why}\n" for _, _, why in fitted] if fitted else []),
                      "# Below: the original profile with its comments, the overrides merged in.\n#\n"])
    text = render(base_text, base, [*overrides, *fitted], header, src)

    target = Path(folder if folder is not None else profile_dirs()[0]).expanduser() / name / "config.yaml"
    others = sorted(p.name for p in target.parent.glob("*.yaml") if PROFILE_FILE.fullmatch(p.name)
                    and p.name != "config.yaml") if target.parent.is_dir() else []
    if others:
        raise PaeError(f"install-profile: {target.parent} also holds {', '.join(others)}, which snakemake may read "
                       "instead of config.yaml: remove it or choose another NAME")
    if target.exists():
        if target.read_text() == text:
            return target, False
        if not force:
            raise PaeError(f"install-profile: {target} exists and differs from the profile this would write: pass "
                           "--force to replace it, or choose another NAME")
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target, True
