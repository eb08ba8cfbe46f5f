"""python -m pulp_generate: write (or --check) every generated artefact; `overlay` writes a
kustomize overlay for given settings (make deploy); `without-crds` filters a YAML stream."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from . import bundle, docs, helm, kustomize
from .files import Files, stale, to_yaml, write
from .settings import DEFAULT_NAMESPACE, Install

ROOT = Path(__file__).resolve().parents[3]
OWNED_DIRS = (
    "config/crd",
    "config/rbac",
    "config/manager",
    "config/default",
    "config/overlays",
    "config/monitoring",
    helm.CHART,
    bundle.BUNDLE,
)


def all_files(root: Path = ROOT) -> Files:
    files: Files = {}
    files.update(kustomize.base_files())
    files.update(helm.chart_files())
    files.update(bundle.bundle_files(root))
    files.update(docs.docs_files(root / "src" / "pulp_operator"))
    return files


def _generate(args: argparse.Namespace) -> int:
    files = all_files(args.root)
    if args.check:
        found = stale(args.root, files, OWNED_DIRS)
        if found:
            print("generated files are stale (run `make generate`):", file=sys.stderr)
            for rel in found:
                print(f"  {rel}", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date")
        return 0
    for rel in stale(args.root, {}, OWNED_DIRS):
        path = args.root / rel.split(" ", 1)[0]
        if path.relative_to(args.root).as_posix() not in files:
            path.unlink()
            print(f"removed {path.relative_to(args.root)}")
    for rel in write(args.root, files):
        print(f"wrote {rel}")
    return 0


def _overlay(args: argparse.Namespace) -> int:
    watch = tuple(n for n in (args.watch or "").replace(",", " ").split() if n)
    install = Install(
        namespace=args.namespace,
        mode=args.mode,
        watch_namespaces=watch,
        **({"image": args.image} if args.image else {}),
    )
    kustomize.write_overlay(install, args.root / "config" / "default", args.out)
    print(args.out)
    return 0


def _without_crds(_: argparse.Namespace) -> int:
    for doc in yaml.safe_load_all(sys.stdin):
        if doc and doc.get("kind") != "CustomResourceDefinition":
            sys.stdout.write("---\n" + to_yaml(doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulp_generate", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    parser.set_defaults(func=_generate)
    sub = parser.add_subparsers(dest="command")
    overlay = sub.add_parser("overlay", help="write a kustomize overlay of config/default")
    overlay.add_argument("--mode", choices=("namespaced", "cluster-wide"), default="namespaced")
    overlay.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the operator's namespace")
    overlay.add_argument("--watch", help="namespaces to watch (comma or space separated)")
    overlay.add_argument("--image", help="operator image (default: the base's)")
    overlay.add_argument("--out", type=Path, required=True, help="directory to write")
    overlay.set_defaults(func=_overlay)
    filt = sub.add_parser("without-crds", help="copy a YAML stream without its CRDs")
    filt.set_defaults(func=_without_crds)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
