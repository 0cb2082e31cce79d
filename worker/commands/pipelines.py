"""``python -m worker pipelines [NAME]``: list the pipelines and their parameters, or render one.

``--render -p K=V`` prints the API-format workflow a job with those parameters would run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.config import Settings
from worker.errors import JobFailed
from worker.exitcodes import ExitCode
from worker.message.pipelines import Pipeline, PipelineCatalog


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "pipelines",
        help="list the pipelines (PIPELINES_DIR) and their parameters",
        description="List the named pipelines a job may use, with each parameter's type, "
        "bounds and default.",
    )
    parser.add_argument("name", nargs="?", help="show only this pipeline")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--render",
        action="store_true",
        help="print the workflow NAME renders to with the given --param values",
    )
    parser.add_argument("--param", "-p", action="append", default=[], metavar="K=V")
    parser.set_defaults(handler=main)


def _doc(p: Pipeline) -> dict[str, Any]:
    return {
        "name": p.name,
        "description": p.description,
        "params": {
            name: {
                "type": param.type,
                "default": param.default,
                "required": param.required,
                "min": param.min,
                "max": param.max,
                "step": param.step,
                "choices": list(param.choices) if param.choices else None,
                "description": param.description,
            }
            for name, param in p.params.items()
        },
    }


def _text(p: Pipeline) -> str:
    lines = [f"{p.name}: {p.description}"]
    for name, param in p.params.items():
        lines.append(f"  {name:<16} {param.describe()}")
        if param.description:
            lines.append(f"  {'':<16} {param.description}")
    return "\n".join(lines)


def _render(catalog: PipelineCatalog, name: str, given: list[str]) -> dict[str, Any]:
    pipeline = catalog.get(name)
    params: dict[str, Any] = {}
    for item in given:
        key, _, text = item.partition("=")
        param = pipeline.params.get(key)
        # An unknown key goes through as text: render names it along with what is allowed.
        params[key] = param.from_text(text) if param is not None else text
    rendered = catalog.render(name, params)
    return {"params": rendered.params, "workflow": rendered.workflow}


def main(args: argparse.Namespace, settings: Settings) -> ExitCode:
    catalog = PipelineCatalog.load(settings.producer.pipelines_dir)
    try:
        if args.render:
            if not args.name:
                print("error: --render needs a pipeline NAME", file=sys.stderr)
                return ExitCode.USAGE
            print(json.dumps(_render(catalog, args.name, args.param), indent=2))
            return ExitCode.OK
        chosen = (
            [catalog.get(args.name)] if args.name else [catalog.get(n) for n in catalog.names()]
        )
    except (JobFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.json:
        print(json.dumps([_doc(p) for p in chosen], indent=2))
    else:
        print("\n\n".join(_text(p) for p in chosen))
    return ExitCode.OK
