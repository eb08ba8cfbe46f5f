"""Command line: ``python -m pulp_devcluster {up,down} ...`` (used by ``make demo``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pulp_devcluster.cli import run as run_cli
from pulp_devcluster.controlplane import (
    TIERS,
    ControlPlane,
    DevClusterError,
    cast_tier,
    default_testbin_dir,
    install_crds,
    running_owner,
    stop_from_state_dir,
)

log = logging.getLogger("pulp_devcluster")

DESCRIPTION = """\
Run a local Kubernetes control plane on 127.0.0.1 (no Docker, no root needed).

tiers:
  apiserver  etcd + kube-apiserver: the real API (CRDs, validation, server-side apply, RBAC),
             but no controllers
  cluster    additionally kube-controller-manager, kube-scheduler and kwok with 2 fake nodes:
             Deployments roll out, Pods become Running/Ready (no containers run), Jobs complete,
             garbage collection works

The binaries come from $PULP_OPERATOR_TESTBIN (default %(testbin)s); build them with
`make testbin` (hack/testbin/build.sh).

examples:
  python -m pulp_devcluster up --tier cluster --state-dir .devcluster --crds config/crd
  KUBECONFIG=.devcluster/kubeconfig kubectl get nodes      # in another shell
  python -m pulp_devcluster down --state-dir .devcluster
"""


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()
    owner = running_owner(state_dir)
    if owner is not None:
        log.error("a devcluster already runs in %s (pid %d); stop it with `down`", state_dir, owner)
        return 1
    stop_from_state_dir(state_dir)  # leftovers of a previous `up` that died
    cp = ControlPlane(
        tier=cast_tier(args.tier),
        state_dir=state_dir,
        testbin=Path(args.testbin) if args.testbin else None,
        nodes=args.nodes,
        startup_timeout=args.timeout,
    )
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    try:
        info = cp.start()
        if args.crds:
            install_crds(info.kubeconfig, Path(args.crds))
        print(f"devcluster {args.tier} ready in {cp.timings['total']:.1f}s: {info.server}")
        print(f"export KUBECONFIG={info.kubeconfig}")
        print(f"state: {state_dir / 'state.json'}, logs: {state_dir / 'logs'}")
        print("running until SIGINT/SIGTERM (Ctrl-C or `devcluster down`)", flush=True)
        while True:
            dead = [name for name, alive in cp.alive().items() if not alive]
            if dead:
                log.error("%s exited unexpectedly; see %s", ", ".join(dead), state_dir / "logs")
                return 1
            time.sleep(1)
    except _Stop as exc:
        log.info("received %s, stopping", exc)
        return 0
    except DevClusterError as exc:
        log.error("%s", exc)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cp.stop()


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).absolute()
    if stop_from_state_dir(state_dir, timeout=args.timeout):
        print(f"devcluster in {state_dir} stopped")
    else:
        print(f"no devcluster state in {state_dir}; nothing to stop")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pulp_devcluster",
        description=DESCRIPTION % {"testbin": default_testbin_dir()},
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up",
        help="start a control plane and keep it running in the foreground",
        description="Start a control plane, write STATE_DIR/kubeconfig and STATE_DIR/state.json"
        " and run until SIGINT/SIGTERM, then stop every process. Logs go to STATE_DIR/logs.",
    )
    up.add_argument("--tier", choices=TIERS, default="cluster", help="default: %(default)s")
    up.add_argument("--state-dir", required=True, help="directory for kubeconfig, state, logs")
    up.add_argument("--crds", metavar="DIR", help="install the CRDs of DIR/*.yaml once ready")
    up.add_argument("--nodes", type=int, default=2, help="fake nodes (cluster tier)")
    up.add_argument("--testbin", help="binaries directory (default $PULP_OPERATOR_TESTBIN)")
    up.add_argument("--timeout", type=float, default=180.0, help="startup timeout per step (s)")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser(
        "down",
        help="stop the control plane recorded in STATE_DIR/state.json",
        description="Stop a control plane started by `up` (signals the `up` process, then kills"
        " any recorded process still running).",
    )
    down.add_argument("--state-dir", required=True)
    down.add_argument("--timeout", type=float, default=30.0, help="wait for `up` to exit (s)")
    down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
