"""The pulp-operator command: run the operator, print the CRDs, render a Pulp CR offline, show
the status of the Pulps of a cluster."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .desired.inputs import Manifest


def _cmd_crds(args: argparse.Namespace) -> int:
    from .api.crd import KINDS, crd, crd_filename, render_crds, to_yaml

    if args.output_dir is None:
        sys.stdout.write(render_crds())
        return 0
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        (out / crd_filename(kind)).write_text(to_yaml(crd(kind)))
    return 0


def _transform(source: str, transform: Callable[[str], tuple[list[Manifest], list[str]]]) -> int:
    """Read FILE (or stdin for "-"), print what `transform` makes of its text and its remarks
    (lines "warning: ..." or "note: ..."); exit codes 2 (unreadable), 1 (bad input), 0."""
    from .convert import ConvertError
    from .render import InputError, dump

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        print(f"error: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        objects, remarks = transform(text)
    except (InputError, ConvertError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for remark in remarks:
        print(remark, file=sys.stderr)
    sys.stdout.write(dump(objects))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import load_documents, render

    def transform(text: str) -> tuple[list[Manifest], list[str]]:
        result = render(
            load_documents(text, args.file),
            namespace=args.namespace,
            show_secrets=args.show_secrets,
        )
        return result.objects, [f"warning: {w}" for w in result.warnings]

    return _transform(args.file, transform)


WATCH_NAMESPACE = "WATCH_NAMESPACE"
LOG_LEVELS = ("debug", "info", "warning", "error")


def watched_namespaces(
    namespaces: list[str] | None, all_namespaces: bool, env: dict[str, str] | os._Environ[str]
) -> tuple[tuple[str, ...], bool] | str:
    """(namespaces, all) from -n/-A, else from WATCH_NAMESPACE; an error message if neither."""
    if all_namespaces and namespaces:
        return "--namespace and --all-namespaces exclude each other"
    if namespaces or all_namespaces:
        return tuple(namespaces or ()), all_namespaces
    if WATCH_NAMESPACE in env:
        # OLM's olm.targetNamespaces: comma-separated names, empty for all namespaces.
        names = tuple(n.strip() for n in env[WATCH_NAMESPACE].split(",") if n.strip())
        return names, not names
    return "give --namespace NS (repeatable), --all-namespaces, or WATCH_NAMESPACE"


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert
    from .render import load_documents

    def transform(text: str) -> tuple[list[Manifest], list[str]]:
        result = convert(load_documents(text, args.file), storage_class=args.storage_class)
        return result.objects, [f"note: {n}" for n in result.notes]

    return _transform(args.file, transform)


def _cmd_run(args: argparse.Namespace) -> int:
    from .operator import RunOptions, run

    watched = watched_namespaces(args.namespace, args.all_namespaces, os.environ)
    if isinstance(watched, str):
        print(f"error: {watched}", file=sys.stderr)
        return 2
    namespaces, all_namespaces = watched
    # Configured before operator.run(), whose basicConfig then leaves it as it is.
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    lease = None
    if args.leader_elect:
        from .leader import LeaseSettings, default_identity, own_namespace

        try:
            lease = LeaseSettings(
                namespace=args.leader_election_namespace
                or own_namespace(next(iter(namespaces), "default")),
                name=args.leader_election_id,
                identity=args.leader_election_identity or default_identity(),
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            )
        except ValueError as exc:
            print(f"error: leader election: {exc}", file=sys.stderr)
            return 2
    options = RunOptions(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        health_address=args.health_address,
        metrics_port=args.metrics_port,
        resync_seconds=args.resync_seconds,
        leader_election=lease,
        watch_scope=args.watch_scope,
    )
    return run(options)


def _cmd_status(args: argparse.Namespace) -> int:
    from .statusview import run

    if args.all_namespaces and args.name:
        print("error: a NAME and --all-namespaces exclude each other", file=sys.stderr)
        return 2
    return run(args.namespace, args.name, args.all_namespaces)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulp-operator",
        description="Kubernetes operator for Pulp 3 (repo-manager.pulpproject.org/v1).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the operator against the current kubeconfig or in-cluster config",
        description="Run the operator: watch Pulp objects and keep"
        " their deployments as their specs say. Uses the in-cluster service account, or the"
        " kubeconfig (KUBECONFIG or ~/.kube/config, current context).",
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; globs allowed). Without -n and -A the"
        " comma-separated WATCH_NAMESPACE is used, empty meaning all namespaces",
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get("LOG_LEVEL", "info").lower(),
        help="log level (default: LOG_LEVEL, else %(default)s)",
    )
    run.add_argument(
        "--health-address",
        default="http://0.0.0.0:8081/healthz",
        help="liveness endpoint URL to serve; readiness is served beside it, at readyz"
        " (default: %(default)s)",
    )
    run.add_argument(
        "--watch-scope",
        choices=("auto", "cluster", "namespaces"),
        default="auto",
        help="with several namespaces: one watch per kind cluster-wide, filtered to them"
        " (cluster), or one per kind and namespace (namespaces); auto takes cluster when the"
        " account may list and watch cluster-wide (default: %(default)s)",
    )
    election = run.add_argument_group(
        "leader election",
        "run several replicas: only the holder of a coordination.k8s.io Lease works and writes",
    )
    election.add_argument(
        "--leader-elect", action="store_true", help="take part in leader election"
    )
    election.add_argument(
        "--leader-election-namespace",
        help="namespace of the Lease (default: the pod's namespace, POD_NAMESPACE, else the first"
        " --namespace, else default)",
    )
    election.add_argument(
        "--leader-election-id", default="pulp-operator-leader", help="name of the Lease"
    )
    election.add_argument(
        "--leader-election-identity", help="this replica's name in the Lease (default: host_random)"
    )
    election.add_argument(
        "--lease-duration",
        type=float,
        default=10.0,
        help="seconds a follower waits, after the Lease last changed, before taking it over"
        " (default: %(default)s)",
    )
    election.add_argument(
        "--renew-deadline",
        type=float,
        default=7.0,
        help="seconds after its last renewal at which the leader stops working; shorter than the"
        " lease duration (default: %(default)s)",
    )
    election.add_argument(
        "--retry-period",
        type=float,
        default=2.0,
        help="seconds between attempts to renew or acquire (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port of the Prometheus metrics endpoint, 0 to disable (default: %(default)s)",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        help="reconcile every Pulp at least this often (default: %(default)s)",
    )
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser(
        "crds",
        help="print the CustomResourceDefinitions (YAML)",
        description="Print the CRDs of Pulp, PulpBackup and PulpRestore, generated from the"
        " models; apply them with `pulp-operator crds | kubectl apply --server-side -f -`.",
    )
    crds.add_argument(
        "-o", "--output-dir", help="write one file per CRD into this directory instead"
    )
    crds.set_defaults(func=_cmd_crds)

    render = sub.add_parser(
        "render",
        help="print the objects the operator would create for a Pulp CR (no cluster needed)",
        description="Print, without any cluster, every object the operator would create for the"
        " Pulp CRs in FILE. Secrets and ConfigMaps in FILE are used; objects the Pulp refers to"
        " that FILE lacks are assumed to exist (a warning says so). Generated secret values are"
        " redacted unless --show-secrets. The output can be piped to `kubectl apply -f -`.",
    )
    render.add_argument(
        "-f", "--file", required=True, help="YAML file with the Pulp CR (- for stdin)"
    )
    render.add_argument(
        "-n", "--namespace", help="namespace to render for (default: the CR's, else none)"
    )
    render.add_argument("--show-secrets", action="store_true", help="print generated secret values")
    render.set_defaults(func=_cmd_render)

    convert = sub.add_parser(
        "convert",
        help="turn Pulp CRs of the original operator into v1 CRs",
        description="Print, as v1 (repo-manager.pulpproject.org/v1) objects, the Pulp CRs of the"
        " original Ansible operator (pulpproject.org/v1alpha1, pulp.pulpproject.org/v1alpha1 and"
        " v1beta1) in FILE: the Pulp, a ConfigMap with its pulp_settings (custom_pulp_settings),"
        " the Secrets v1 reads database and Redis settings from. Fields without a v1 equivalent"
        " are listed on stderr. The output can be piped to `kubectl apply -f -`.",
    )
    convert.add_argument("-f", "--file", required=True, help="YAML file with the CRs (- for stdin)")
    convert.add_argument(
        "--storage-class",
        default="standard",
        help="StorageClass for a file storage claim the old CR left to the cluster default"
        " (default: %(default)s)",
    )
    convert.set_defaults(func=_cmd_convert)

    status = sub.add_parser(
        "status",
        help="show each Pulp's components, version, URL and failing conditions",
        description="Show, from the cluster (current kubeconfig context or in-cluster config),"
        " a table per Pulp of its components (ready/desired replicas, images), its URL, the"
        " running and desired version and every condition that is not True. Exits 0 when every"
        " Pulp shown is Ready, 1 otherwise (also when none is found).",
    )
    status.add_argument("name", nargs="?", metavar="NAME", help="only this Pulp")
    status.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's namespace)"
    )
    status.add_argument(
        "-A", "--all-namespaces", action="store_true", help="the Pulps of every namespace"
    )
    status.set_defaults(func=_cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
