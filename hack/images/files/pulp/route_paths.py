#!/usr/local/bin/python3
"""/usr/bin/route_paths.py NAME of the local stand-in for quay.io/pulp/pulp-minimal.

Written for hack/images/build.sh from the published helper's documented behaviour: prints, as a
JSON list, the routes that the installed plugins' nginx snippets
(<package>/app/webserver_snippets/nginx.conf of each pulp_* or galaxy_ng package) send to the API
or content service of the Pulp instance NAME:
  {"name": NAME-<plugin><path as dashes>, "path": ..., "targetPort": "api-24817" | "content-24816",
   "serviceName": NAME-api-svc | NAME-content-svc[, "rewrite": ...]}
A location with a rewrite also gets a twin entry (name suffixed "2") without the trailing slash.
"""
import json
import pkgutil
import re
import sys
from pathlib import Path


def tokens(text):
    """Tokens of an nginx config: words, quoted strings, '{', '}' and ';' (comments dropped)."""
    for match in re.finditer(r'#[^\n]*|"(?:\\.|[^"])*"|\'(?:\\.|[^\'])*\'|[{};]|[^\s{};"\'#]+', text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        if token[0] in "\"'":
            token = token[1:-1]
        yield token


def locations(text):
    """(path, [(directive, [args])]) for each top-level `location` block."""
    found, stack, words, current = [], [], [], None
    for token in tokens(text):
        if token == "{":
            stack.append(words)
            if len(stack) == 1 and words and words[0] == "location":
                current = (words[-1], [])
            words = []
        elif token == "}":
            if stack:
                stack.pop()
                if not stack and current is not None:
                    found.append(current)
                    current = None
            words = []
        elif token == ";":
            if current is not None and len(stack) == 1 and words:
                current[1].append((words[0], words[1:]))
            words = []
        else:
            words.append(token)
    return found


def snippet_files():
    for module in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if not re.match(r"pulp_.*|galaxy_ng$", module.name):
            continue
        path = Path(getattr(module.module_finder, "path", "")) / module.name / "app" / "webserver_snippets" / "nginx.conf"
        if path.is_file():
            yield module.name, path


def main():
    if len(sys.argv) != 2:
        print("usage: route_paths.py NAME", file=sys.stderr)
        return 2
    name = sys.argv[1]
    routes = []
    for package, path in snippet_files():
        app = "galaxy" if package == "galaxy_ng" else package[len("pulp_"):]
        for location, directives in locations(path.read_text()):
            if not location.startswith("/"):
                location = "/" + location
            target = service = rewrite = None
            for directive, args in directives:
                if directive == "proxy_pass" and args:
                    if "pulp-api" in args[0]:
                        target, service = "api-24817", name + "-api-svc"
                        break
                    if "pulp-content" in args[0]:
                        target, service = "content-24816", name + "-content-svc"
                        break
                elif directive == "rewrite" and len(args) > 1:
                    rewrite = args[1]
            if service is None:
                raise SystemExit("Location %s in %s has no proxy_pass to pulp-api or pulp-content" % (location, path))
            slug = location.rstrip("/").replace("/", "-").replace("_", "-")
            route = {"name": "%s-%s%s" % (name, app, slug), "path": location, "targetPort": target, "serviceName": service}
            if rewrite:
                route["rewrite"] = rewrite
                routes.append(dict(route, name=route["name"] + "2", path=location.rstrip("/")))
            routes.append(route)
    print(json.dumps(routes, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
