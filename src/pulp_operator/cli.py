"""The pulp-operator command: run the operator, print the CRDs, render a Pulp CR offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


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


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import InputError, dump, load_documents, render

    source = args.file
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        print(f"error: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = render(
            load_documents(text, source), namespace=args.namespace, show_secrets=args.show_secrets
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(dump(result.objects))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .operator import RunOptions, run

    if args.all_namespaces and args.namespace:
        print("error: --namespace and --all-namespaces exclude each other", file=sys.stderr)
        return 2
    options = RunOptions(
        namespaces=tuple(args.namespace or ()),
        all_namespaces=args.all_namespaces,
        health_address=args.health_address,
        metrics_port=args.metrics_port,
        resync_seconds=args.resync_seconds,
    )
    if not options.all_namespaces and not options.namespaces:
        print("error: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    return run(options)


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
        description="Run the operator: watch Pulp, PulpBackup and PulpRestore objects and keep"
        " their deployments as their specs say. Uses the in-cluster service account, or the"
        " kubeconfig (KUBECONFIG or ~/.kube/config, current context).",
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; globs allowed)",
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument(
        "--health-address",
        default="http://0.0.0.0:8081/healthz",
        help="liveness/readiness endpoint URL to serve (default: %(default)s)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
