"""The ``ensemble`` command line.

``ensemble demo`` runs the consensus engine on an example that ships with the package and
prints the consensus with each sentence's confidence; no model, key or network is needed.
``ensemble ask PROMPT -m SPEC ... -n REPEATS`` asks real models (default: ``local``) and prints
their consensus the same way, with the models behind each span and any failures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import resources
from typing import TextIO

from ensemble import __version__
from ensemble.engine import consensus
from ensemble.errors import EnsembleError
from ensemble.metrics.base import available_metrics
from ensemble.types import Consensus

__all__ = ["main"]

_GREEN, _YELLOW, _RED, _DIM, _RESET = "\033[32m", "\033[33m", "\033[31m", "\033[2m", "\033[0m"


def _use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _paint(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour else text


def _confidence_colour(confidence: float) -> str:
    if confidence >= 0.75:
        return _GREEN
    if confidence >= 0.4:
        return _YELLOW
    return _RED


def render(result: Consensus, *, stream: TextIO, colour: bool | None = None) -> None:
    """Print a consensus: the text, then one line per span with its confidence and supporters."""
    colour = _use_colour(stream) if colour is None else colour
    out = stream.write
    out(f"{result.text}\n\n")
    out(_paint(f"metric: {result.metric.signature}\n", _DIM, colour))
    for span in result.spans:
        models = sorted({result.samples[i].model or f"sample {i}" for i in span.supporters})
        shown = span.text if len(span.text) <= 90 else span.text[:87] + "..."
        line = f"{span.confidence:5.2f}  {shown}"
        out(_paint(line, _confidence_colour(span.confidence), colour))
        voters = sum(1 for v in span.support if v is not None)
        out(_paint(f"  [{len(span.supporters)}/{voters} support", _DIM, colour))
        if any(result.samples[i].model for i in span.supporters):
            out(_paint(f": {', '.join(models)}", _DIM, colour))
        out(_paint("]\n", _DIM, colour))
    failures = [s for s in result.samples if s.error is not None]
    if failures:
        out(f"\n{len(failures)} failed sample(s):\n")
        for s in failures:
            assert s.error is not None
            out(f"  - {s.model or '?'}#{s.repeat}: {s.error.type}: {s.error.message}\n")
    for alert in result.alerts:
        out(_paint(f"\nALERT [{alert.kind}] {alert.message}\n", _RED, colour))


def _demo(args: argparse.Namespace) -> int:
    data = json.loads(resources.files("ensemble").joinpath("data/demo.json").read_text("utf-8"))
    if not args.json:  # --json prints the Consensus alone, so that it parses
        print(f"prompt: {data['prompt']}")
        print(f"{len(data['samples'])} bundled samples; consensus by metric {args.metric!r}:\n")
    result = consensus(
        data["samples"],
        metric=args.metric,
        threshold=args.threshold,
        calibration=args.calibration,
    )
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        render(result, stream=sys.stdout)
    return 0


def _ask(args: argparse.Namespace) -> int:
    from ensemble.runner import Ensemble

    ens = Ensemble(
        models=args.models or ["local"],
        repeats=args.repeats,
        metric=args.metric,
        temperature=args.temperature,
        quorum=args.quorum,
        timeout=args.timeout,
        deadline=args.deadline,
        calibration=args.calibration,
        method=args.method,
    )
    result = ens.run(args.prompt)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        render(result, stream=sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensemble",
        description="Ask several models several times and keep what they agree on.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="consensus over a bundled example (no model needed)")
    demo.add_argument("--metric", default="ngram", help=f"one of {', '.join(available_metrics())}")
    demo.add_argument("--threshold", type=float, default=None, help="keep spans at or above this")
    demo.add_argument("--json", action="store_true", help="print the Consensus as JSON")
    _calibration_option(demo)
    demo.set_defaults(func=_demo)

    ask = sub.add_parser(
        "ask",
        help="ask models several times each and print the consensus",
        description="Ask each model REPEATS times, vote, and print the consensus with each "
        "span's confidence, the models that support it, and any failures.",
    )
    ask.add_argument("prompt", metavar="PROMPT")
    ask.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        metavar="SPEC",
        help="model spec, e.g. openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest, local "
        "(repeatable; default: local)",
    )
    ask.add_argument("-n", "--repeats", type=int, default=5, help="calls per model (default 5)")
    ask.add_argument("--metric", default="ngram", help=f"one of {', '.join(available_metrics())}")
    ask.add_argument("--temperature", type=float, default=None, help="for every model")
    ask.add_argument("--quorum", type=int, default=None, help="fewest successful samples")
    ask.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt")
    ask.add_argument("--deadline", type=float, default=120.0, help="seconds for the whole run")
    ask.add_argument("--json", action="store_true", help="print the Consensus as JSON")
    ask.add_argument(
        "--method",
        choices=["select", "fuse"],
        default="select",
        help="select one sample (default) or fuse the sentences most models state "
        "(see docs/fuse.md)",
    )
    _calibration_option(ask)
    ask.set_defaults(func=_ask)
    return parser


def _calibration_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibration",
        metavar="NAME|PATH",
        default=None,
        help="map confidences to probabilities with a packaged calibration (ngram-wikibio, "
        "for --metric ngram) or a calibration JSON file; see docs/calibration.md",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except EnsembleError as exc:
        print(f"ensemble: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ensemble demo | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
