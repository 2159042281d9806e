"""The reference qrexec policy evaluator on fixture files (see ./qrexec-policy)."""

import asyncio
import json
import logging
import os
import pathlib
import sys

from qrexec import exc
from qrexec.policy import parser, parser_compat

logging.disable(logging.CRITICAL)

DEFAULTS = {
    "type": "AppVM",
    "tags": [],
    "template_for_dispvms": False,
    "default_dispvm": None,
    "power_state": "Halted",
    "internal": None,
}
ADMINVM_UUID = "00000000-0000-0000-0000-000000000000"


def system_info(path):
    """The file's {"domains": ...} as qrexec's get_system_info() returns it."""
    with open(path, encoding="utf-8") as file:
        domains = json.load(file)["domains"]
    full = {}
    for name, given in domains.items():
        entry = dict(DEFAULTS)
        entry.update(given)
        if entry["type"] == "AdminVM" and not entry.get("uuid"):
            entry["uuid"] = ADMINVM_UUID
        entry["name"] = name
        full[name] = entry
    for name, entry in list(full.items()):
        if entry.get("uuid"):
            full["uuid:" + entry["uuid"]] = entry
    return {"domains": full}


def load(directories, legacy):
    """The policy FilePolicy loads, or the exception it raises."""
    parser_compat.POLICYPATH_OLD = pathlib.Path(legacy)
    try:
        return parser.FilePolicy(policy_path=[pathlib.Path(d) for d in directories])
    except Exception as err:  # pylint: disable=broad-except
        return err


def rule_json(rule, relative):
    action = rule.action
    params = {"notify": action.notify}
    for key in ("target", "default_target", "user", "autostart"):
        value = getattr(action, key, None)
        if value is not None:
            params[key] = value if isinstance(value, bool) else str(value)
    text = " ".join(
        [rule.service or "*", rule.argument or "*", str(rule.source), str(rule.target), str(action)]
    )
    return {
        "action": type(action).__name__.lower(),
        "file": relative(str(rule.filepath)),
        "line": rule.lineno,
        "params": params,
        "text": text,
    }


def failure(answer, err, stage):
    answer["stage"] = stage
    answer["error_type"] = type(err).__name__
    if isinstance(err, exc.AccessDenied):
        answer["decision"] = "deny"
        answer["notify"] = err.notify
    else:
        answer["decision"] = "error"
    return answer


def decide(policy, info, query, relative):
    """One answer object for one query."""
    service = query["service"]
    argument = query.get("argument") or ""
    if "+" in service and not argument:
        service, argument = service.split("+", 1)
    argument = "+" + argument.lstrip("+") if not argument.startswith("+") else argument
    argument = argument or "+"
    target = query.get("target") or ""
    answer = {
        "id": query.get("id"),
        "query": {"argument": argument, "service": service, "source": query["source"], "target": target},
    }
    requested_source = query.get("requested_source") or ""
    if requested_source:
        answer["query"]["requested_source"] = requested_source
    if answer["id"] is None:
        del answer["id"]

    def reason(err):
        answer["reason"] = relative(str(err))

    if isinstance(policy, BaseException):
        reason(policy)
        return failure(answer, policy, "load")
    try:
        request = parser.Request(
            service, argument, query["source"], target, system_info=info, requested_source=requested_source
        )
    except Exception as err:  # pylint: disable=broad-except
        reason(err)
        return failure(answer, err, "request")
    answer["requested_target"] = str(request.target)
    try:
        rule = policy.find_matching_rule(request)
    except Exception as err:  # pylint: disable=broad-except
        reason(err)
        return failure(answer, err, "evaluate")
    answer["rule"] = rule_json(rule, relative)
    try:
        resolution = rule.action.evaluate(request)
    except Exception as err:  # pylint: disable=broad-except
        reason(err)
        return failure(answer, err, "evaluate")
    if isinstance(resolution, parser.AskResolution):
        answer.update(
            decision="ask",
            stage="evaluate",
            targets=sorted(str(t) for t in resolution.targets_for_ask),
            default_target=None if resolution.default_target is None else str(resolution.default_target),
            user=resolution.user,
            notify=resolution.notify,
            autostart=resolution.autostart,
        )
        return answer
    try:
        lines = asyncio.run(resolution.execute())
    except Exception as err:  # pylint: disable=broad-except
        reason(err)
        return failure(answer, err, "execute")
    answer.update(
        decision="allow",
        stage="execute",
        target=str(resolution.target),
        user=resolution.user,
        notify=resolution.notify,
        autostart=resolution.autostart,
        daemon_response=lines.split("\n"),
    )
    return answer


def option(args, name, default, many=False):
    values = []
    while name in args:
        index = args.index(name)
        values.append(args[index + 1])
        del args[index : index + 2]
    if many:
        return values or default
    return values[-1] if values else default


def evaluate(args):
    policy_default = option(args, "--policy-dir", ["policy.d"], many=True)
    legacy_default = option(args, "--legacy-dir", "legacy")
    info_default = option(args, "--system-info", "system-info.json")
    queries_path = args[0]
    base = os.path.realpath(option(args[1:], "--base", os.path.dirname(queries_path) or "."))
    with open(queries_path, encoding="utf-8") as file:
        queries = json.load(file)
    policies, infos = {}, {}
    out = sys.stdout
    for query in queries:
        directories = query.get("policy", policy_default)
        directories = [directories] if isinstance(directories, str) else directories
        directories = [os.path.realpath(os.path.join(base, d)) for d in directories]
        legacy = os.path.realpath(os.path.join(base, query.get("legacy", legacy_default)))
        key = (tuple(directories), legacy)
        if key not in policies:
            policies[key] = load(directories, legacy)
        info_path = os.path.join(base, query.get("system_info", info_default))
        if info_path not in infos:
            infos[info_path] = system_info(info_path)
        parent = os.path.dirname(os.path.realpath(directories[0])) + "/"

        def relative(text, parent=parent):
            return text.replace(parent, "").replace(base + "/", "")

        answer = decide(policies[key], infos[info_path], query, relative)
        out.write(json.dumps(answer, sort_keys=True, ensure_ascii=False) + "\n")
    return 0


def load_only(args):
    legacy = option(args, "--legacy-dir", "/etc/qubes-rpc/policy")
    policy = load(args, legacy)
    if isinstance(policy, BaseException):
        print(f"refused: {type(policy).__name__}: {policy}")
        return 1
    print(f"ok: {len(policy.rules)} rules")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "eval":
        return evaluate(argv[1:])
    if len(argv) >= 2 and argv[0] == "load":
        return load_only(argv[1:])
    sys.stderr.write("usage: qrexec-policy eval QUERIES.json [options] | load DIR... [--legacy-dir DIR]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
