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
from pathlib import Path
from typing import Any, TextIO

from ensemble import __version__
from ensemble.engine import consensus
from ensemble.errors import ConfigurationError, EnsembleError
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
    _calibration_option(ask)
    ask.set_defaults(func=_ask)
    _add_batch_command(sub)
    return parser


def _add_batch_command(sub: Any) -> None:
    """``ensemble batch INPUT.jsonl -o OUTPUT.jsonl``: many prompts, durable (docs/durable.md)."""

    def load_prices(path: str | None) -> dict[str, Any] | None:
        if path is None:
            return None
        try:
            raw = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the prices file {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{path}: prices are an object of name -> [input, output]")
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if isinstance(value, dict):  # {"price_in": .., "price_out": ..} as in a model card
                value = (value.get("price_in"), value.get("price_out"))
            out[name] = tuple(value) if isinstance(value, list) else value
        return out

    def run_batch(args: argparse.Namespace) -> int:
        import asyncio

        from ensemble.batch import read_rows, run_jsonl
        from ensemble.runner import Ensemble
        from ensemble.store import Store

        try:
            lines = Path(args.input).read_text("utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {args.input}: {exc}") from exc
        rows = read_rows(lines)
        models: list[Any] = list(args.models or ["local"])
        if args.base_url:  # an OpenAI-compatible server: openai:NAME specs go there
            from ensemble.models.openai import OpenAIModel

            models = [
                OpenAIModel(m.split(":", 1)[1], base_url=args.base_url)
                if isinstance(m, str) and m.startswith("openai:")
                else m
                for m in models
            ]
        store = Store(args.store) if args.store else None
        ens = Ensemble(
            models=models,
            repeats=args.repeats,
            metric=args.metric,
            temperature=args.temperature,
            quorum=args.quorum,
            timeout=args.timeout,
            deadline=args.deadline,
            seed=args.seed,
            max_tokens=args.max_tokens,
            system=args.system,
            max_concurrency=args.concurrency,
            max_per_provider=args.concurrency,
            store=store,
            prices=load_prices(args.prices),
            budget=args.budget,
            rate_limit=args.rate_limit,
        )
        run = args.run or (f"batch:{Path(args.input).resolve()}" if store else None)
        bar: Any = None
        if sys.stderr.isatty():
            import importlib

            try:  # tqdm is optional: no bar without it
                tqdm: Any = importlib.import_module("tqdm").tqdm
            except ImportError:  # pragma: no cover
                tqdm = None
            if tqdm is not None:
                import shutil

                width = shutil.get_terminal_size((100, 20)).columns or 100
                bar = tqdm(total=len(rows), unit="prompt", file=sys.stderr, ncols=width)

        def progress(done: int, failed: int, spent: float) -> None:
            if bar is not None:
                bar.n = done
                bar.set_postfix_str(f"failed {failed}, spent ${spent:.4f}", refresh=False)
                bar.refresh()

        out_path = Path(args.output)
        partial = out_path.with_name(out_path.name + ".partial")

        async def go() -> tuple[int, int]:
            try:
                with partial.open("w", encoding="utf-8") as out:
                    return await run_jsonl(ens, rows, out, run=run, progress=progress)
            finally:
                await ens.aclose()

        try:
            done, failed = asyncio.run(go())
        finally:
            if bar is not None:
                bar.close()
            if store is not None:
                store.close()
        partial.replace(out_path)  # all rows or the previous file, never half of one
        if sys.stderr.isatty():
            print(
                f"{done} row(s), {failed} failed; {ens._durable.drawn} call(s) made, "
                f"{ens._durable.replayed} from the store; spent ${ens._durable.spent:.4f}",
                file=sys.stderr,
            )
        return 1 if failed else 0

    batch = sub.add_parser(
        "batch",
        help="run many prompts from a JSONL file, with a store, a budget and rate limits",
        description='Read {"id": ..., "prompt": ...} rows, write one {"id", "consensus"} or '
        '{"id", "error"} row per input row, in order. With --store, every sample is kept as it '
        "comes back: rerunning after a crash sends only what never came back. Exit status 1 "
        "when a row failed.",
    )
    batch.add_argument("input", metavar="INPUT.jsonl")
    batch.add_argument("-o", "--output", required=True, metavar="OUTPUT.jsonl")
    batch.add_argument("--store", metavar="FILE", help="SQLite store (cache and journal)")
    batch.add_argument("--run", metavar="NAME", help="run name in the store (default: INPUT)")
    batch.add_argument(
        "-m", "--model", dest="models", action="append", metavar="SPEC", help="repeatable"
    )
    batch.add_argument("-n", "--repeats", type=int, default=5, help="calls per model (default 5)")
    batch.add_argument("--base-url", metavar="URL", help="OpenAI-compatible server for openai:")
    batch.add_argument("--metric", default="ngram")
    batch.add_argument("--temperature", type=float, default=None)
    batch.add_argument("--quorum", type=int, default=None)
    batch.add_argument("--seed", type=int, default=None)
    batch.add_argument("--system", default=None)
    batch.add_argument("--max-tokens", type=int, default=None)
    batch.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt")
    batch.add_argument("--deadline", type=float, default=120.0, help="seconds per prompt")
    batch.add_argument("--concurrency", type=int, default=16, help="calls in flight (16)")
    batch.add_argument("--budget", type=float, default=None, metavar="USD")
    batch.add_argument(
        "--prices", metavar="FILE", help='JSON: {"model": [input, output]} USD per 1M tokens'
    )
    batch.add_argument("--rate-limit", type=float, default=None, metavar="RPS")
    batch.set_defaults(func=run_batch)


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
