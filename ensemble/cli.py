"""The ``ensemble`` command line.

``ensemble demo`` runs the consensus engine on an example that ships with the package and
prints the consensus with each sentence's confidence; no model, key or network is needed.
``ensemble ask PROMPT -m SPEC ... -n REPEATS`` asks real models (default: ``local``) and prints
their consensus the same way, with the models behind each span and any failures.
``ensemble ask PROMPT --auto`` lets a planner choose the models from a catalog
(``docs/controller.md``).
``ensemble batch INPUT.jsonl -o OUTPUT.jsonl`` runs many prompts, with a store, a budget and
rate limits (``docs/durable.md``).

Exit status (see ``docs/cli.md``): 0 success; 2 a usage error (bad option, empty prompt, unknown
model, missing key); 3 the run failed (providers failed, quorum not met; for ``batch``: at least
one row failed); 130 interrupted (Ctrl-C), after the local model server was stopped.

Adding a subcommand: write ``_add_NAME(sub)`` that builds its parser and sets
``func=_NAME`` (a function ``(args) -> int``), and list it in :data:`_SUBCOMMANDS`. Options that
several subcommands share (the vote's metric, threshold, calibration, ``--json``) come from
:func:`_vote_options`; the run's options from :func:`_run_options`. Document every option in
``docs/cli.md`` (a test checks that each one is there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.text import Text

from ensemble import __version__
from ensemble._terminal import Calls, Reporter, console_for
from ensemble._validate import check_int, check_number
from ensemble.engine import consensus
from ensemble.errors import ConfigurationError, EnsembleError, QuorumError, RunError, UsageError
from ensemble.metrics.base import available_metrics
from ensemble.types import Consensus, Sample

if TYPE_CHECKING:
    from ensemble.models.base import Completion, Model, Request
    from ensemble.runner import Ensemble

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_USAGE = 2
"""A usage error: a bad option or value, an empty prompt, an unknown name, a missing key."""
EXIT_FAILED = 3
"""The run failed: the providers failed, or fewer samples came back than the quorum."""
EXIT_INTERRUPTED = 130
"""Interrupted (SIGINT, Ctrl-C): 128 + 2, as shells report it."""

MAX_CALLS = 200
"""Most calls (models x repeats) one ``ask`` makes without ``--yes``."""

_FAILURE_GROUPS_SHOWN = 20

_GREEN, _YELLOW, _RED, _DIM = "green", "yellow", "red", "dim"


# --- printing -----------------------------------------------------------------------------


def _confidence_colour(confidence: float) -> str:
    if confidence >= 0.75:
        return _GREEN
    if confidence >= 0.4:
        return _YELLOW
    return _RED


def _support_label(result: Consensus, voters: int, supporters: int) -> str:
    """``3/4 other samples``: the denominator is the samples that voted on the span, which
    leaves out the candidate the text was taken from and any sample that failed."""
    whom = "other samples" if result.candidate is not None else "samples"
    return f"{supporters}/{voters} {whom}"


def render(
    result: Consensus, *, stream: TextIO, colour: bool | None = None, show_samples: bool = False
) -> None:
    """Print a consensus: the text (only what a threshold kept), then one line per span with
    its confidence and supporters, the failures (identical ones summarised), any alerts, and
    with ``show_samples`` every sample's text."""
    console = console_for(stream, colour=colour)

    def line(*parts: tuple[str, str]) -> None:
        console.print(Text.assemble(*parts))

    kept = result.text if result.threshold is None else result.supported_text
    console.print(Text(kept) if kept else Text("(no span reached the threshold)", _DIM))
    console.print()
    line((f"metric: {result.metric.signature}", _DIM))
    if result.threshold is not None:
        line((f"threshold: {result.threshold:g} (spans below it are left out)", _DIM))
    for span in result.spans:
        shown = span.text if len(span.text) <= 90 else span.text[:87] + "..."
        voters = sum(1 for v in span.support if v is not None)
        label = _support_label(result, voters, len(span.supporters))
        models = sorted({result.samples[i].model or f"sample {i}" for i in span.supporters})
        named = any(result.samples[i].model for i in span.supporters)
        line(
            (f"{span.confidence:5.2f}  {shown}", _confidence_colour(span.confidence)),
            (f"  [{label}" + (f": {', '.join(models)}" if named else "") + "]", _DIM),
        )
    failures = [s for s in result.samples if s.error is not None]
    if failures:
        console.print()
        console.print(Text(f"{len(failures)} failed sample(s):"))
        for text in summarise_failures(failures):
            console.print(Text(f"  - {text}"))
    for alert in result.alerts:
        console.print()
        line((f"ALERT [{alert.kind}] {alert.message}", _RED))
    if show_samples:
        console.print()
        console.print(Text(f"samples ({len(result.samples)}):"))
        for i, s in enumerate(result.samples):
            where = f" {s.model}#{s.repeat}" if s.model else ""
            mark = " (consensus)" if i == result.candidate else ""
            body = s.text if s.text is not None else f"[failed: {_error_type(s)}]"
            indented = body.replace("\n", "\n      ")
            line((f"  [{i}]{where}{mark}: ", _DIM), (indented, ""))


def _error_type(sample: Sample) -> str:
    return sample.error.type if sample.error is not None else "?"


def summarise_failures(
    failures: Iterable[Sample], *, limit: int = _FAILURE_GROUPS_SHOWN
) -> list[str]:
    """One line per distinct failure: ``openai:a#3: ProviderHTTPError: HTTP 404`` for one,
    ``993 x openai:a: DeadlineExceededError: ...`` for many identical ones (same model, type and
    message), most frequent first; at most ``limit`` lines, then how many more kinds there were."""
    groups: Counter[tuple[str, str, str]] = Counter()
    first_repeat: dict[tuple[str, str, str], int | None] = {}
    for s in failures:
        assert s.error is not None
        key = (s.model or "?", s.error.type, s.error.message)
        groups[key] += 1
        first_repeat.setdefault(key, s.repeat)
    lines = []
    for key, count in groups.most_common(limit):
        model, kind, message = key
        if count == 1:
            repeat = first_repeat[key]
            lines.append(f"{model}#{'?' if repeat is None else repeat}: {kind}: {message}")
        else:
            lines.append(f"{count} x {model}: {kind}: {message}")
    if len(groups) > limit:
        rest = sum(n for _, n in groups.most_common()[limit:])
        lines.append(f"... and {rest} more failure(s) of {len(groups) - limit} other kind(s)")
    return lines


def _print_result(result: Consensus, args: argparse.Namespace) -> None:
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        render(result, stream=sys.stdout, show_samples=getattr(args, "show_samples", False))


def _apply_threshold(result: Consensus, threshold: float | None) -> Consensus:
    """Keep the spans at or above ``threshold`` (what ``consensus(threshold=...)`` keeps)."""
    if threshold is None:
        return result
    kept = tuple(s for s in result.spans if s.confidence >= threshold)
    return result.model_copy(update={"spans": kept, "threshold": threshold})


# --- demo -----------------------------------------------------------------------------------


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
        method=args.method,
    )
    _print_result(result, args)
    return EXIT_OK


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="consensus over a bundled example (no model needed)",
        description="Run the consensus engine on samples that ship with the package.",
    )
    _vote_options(demo)
    demo.add_argument("--show-samples", action="store_true", help="also print every sample's text")
    demo.set_defaults(func=_demo)


# --- ask ------------------------------------------------------------------------------------


def _read_prompt(value: str) -> str:
    prompt = sys.stdin.read().strip() if value == "-" else value
    if not prompt.strip():
        where = "standard input" if value == "-" else "PROMPT"
        raise UsageError(f"the prompt is empty ({where}); nothing to ask")
    return prompt


def _models(args: argparse.Namespace) -> list[Model | str]:
    specs: list[str] = args.models or ["local"]
    if args.base_url is None:
        if args.api_key_env is not None:
            raise UsageError("--api-key-env goes with --base-url")
        return list(specs)
    if not any(s.startswith("openai:") for s in specs):
        raise UsageError("--base-url needs at least one -m openai:NAME (the server's model name)")
    from ensemble.models.openai import OpenAIModel

    key = None
    if args.api_key_env is not None:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env: the environment variable {args.api_key_env} is empty")
    models: list[Model | str] = []
    for spec in specs:
        if spec.startswith("openai:"):
            models.append(OpenAIModel(spec.split(":", 1)[1], base_url=args.base_url, api_key=key))
        else:
            models.append(spec)
    return models


def _check_size(calls: int, args: argparse.Namespace) -> None:
    if calls > MAX_CALLS and not args.yes:
        raise UsageError(
            f"this run would make {calls} calls (models x repeats), more than {MAX_CALLS}; "
            "pass --yes if you mean it"
        )


def _watch(model: Model, calls: Calls) -> None:
    """Count this model's attempts as they end (the CLI made the model; only it sees this)."""
    inner = model.agenerate

    async def agenerate(request: Request) -> Completion:
        try:
            completion = await inner(request)
        except asyncio.CancelledError:
            raise
        except BaseException:
            calls.failure()
            raise
        calls.answer()
        return completion

    setattr(model, "agenerate", agenerate)  # noqa: B010 - an instance attribute, on purpose


def _start_local_servers(ens: Ensemble, reporter: Reporter) -> None:
    """Start the llama.cpp servers of local models now, in the main thread, with a spinner:
    Ctrl-C then interrupts the start-up itself (a start inside the run's worker thread would
    hold the exit until the server is up)."""
    from ensemble.models.local import LocalModel

    for model in ens.models:
        if isinstance(model, LocalModel) and model.server is None:
            with reporter.phase(f"starting the local model server for {model.name} (llama.cpp)"):
                model.start()


def _ask_auto(args: argparse.Namespace) -> int:
    """``ask --auto``: the controller plans, runs and answers (``docs/controller.md``)."""
    from ensemble.controller import Controller

    if args.models or args.base_url is not None:
        raise UsageError("--auto chooses the models itself: give no -m/--model or --base-url")
    prompt = _read_prompt(args.prompt)
    ctl = Controller(
        catalog=args.catalog,
        planner=args.planner,
        metric=args.metric,
        timeout=args.timeout,
        deadline=args.deadline,
        **_ask_pace(args),
    )
    from ensemble.models.local import LocalModel

    if isinstance(ctl.planner, LocalModel) and ctl.planner.server is None:
        # as for ask: started here, in the main thread, so that Ctrl-C interrupts the start-up
        reporter = Reporter(enabled=False if args.quiet else None)
        with reporter.phase(f"starting the local planner server for {ctl.planner.name}"):
            ctl.planner.start()
    result = ctl.run(prompt, risk=args.risk)
    if args.json:
        print(result.model_dump_json(indent=2))
        return EXIT_OK
    plan = result.plan
    print(f"plan ({plan.source}, risk {plan.risk}):")
    for t in plan.tasks:
        after = f" after {', '.join(t.depends_on)}" if t.depends_on else ""
        print(f"  {t.id}{after}: {t.request}")
        for m in t.models:
            print(f"    - {m.name} x{m.repeats}" + (f": {m.reason}" if m.reason else ""))
    u = result.usage
    print(
        f"planner: {u.planner_calls} call(s), {u.planner_input_tokens}+"
        f"{u.planner_output_tokens} tokens; models: {u.model_calls} call(s)\n"
    )
    render(
        _apply_threshold(result.answer, args.threshold),
        stream=sys.stdout,
        show_samples=args.show_samples,
    )
    for alert in result.alerts:
        print(f"\nALERT [{alert.kind}] {alert.message}")
    return EXIT_OK


def _ask_pace(args: argparse.Namespace) -> dict[str, Any]:
    """``ask``'s ``--concurrency`` and ``--rate-limit`` as the keywords of an Ensemble or a
    Controller (as for ``batch``: ``N`` attempts in flight overall and per endpoint); an
    option not given leaves the library's default."""
    pace: dict[str, Any] = {"rate_limit": args.rate_limit}
    if args.concurrency is not None:
        pace["max_concurrency"] = pace["max_per_provider"] = args.concurrency
    return pace


def _ask(args: argparse.Namespace) -> int:
    from ensemble.runner import Ensemble

    if args.auto:
        return _ask_auto(args)
    if args.catalog is not None or args.planner != "local" or args.risk != "normal":
        raise UsageError("--catalog, --planner and --risk need --auto")
    prompt = _read_prompt(args.prompt)
    models = _models(args)
    _check_size(len(models) * args.repeats, args)
    ens = Ensemble(
        models=models,
        repeats=args.repeats,
        metric=args.metric,
        temperature=args.temperature,
        quorum=args.quorum,
        timeout=args.timeout,
        deadline=args.deadline,
        seed=args.seed,
        system=args.system,
        max_tokens=args.max_tokens,
        calibration=args.calibration,
        method=args.method,
        **_ask_pace(args),
    )
    reporter = Reporter(enabled=False if args.quiet else None)
    _start_local_servers(ens, reporter)
    total = len(ens.models) * ens.repeats
    what = f"asking {len(ens.models)} model(s) x {ens.repeats}"
    with reporter.calls(what, total) as calls:
        for model in ens.models:
            _watch(model, calls)
        result = ens.run(prompt)
    _print_result(_apply_threshold(result, args.threshold), args)
    return EXIT_OK


def _add_ask(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ask = sub.add_parser(
        "ask",
        help="ask models several times each and print the consensus",
        description="Ask each model REPEATS times, vote, and print the consensus with each "
        "span's confidence, the models that support it, and any failures.",
    )
    ask.add_argument("prompt", metavar="PROMPT", help="what to ask; - reads it from standard input")
    ask.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        metavar="SPEC",
        help="model spec, e.g. openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest, local "
        "(repeatable; default: local)",
    )
    ask.add_argument(
        "-n",
        "--repeats",
        type=_positive_int,
        default=5,
        metavar="N",
        help="calls per model (default 5)",
    )
    _run_options(ask)
    ask.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="send the -m openai:NAME models to this OpenAI-compatible server (vLLM, llama.cpp, "
        "Ollama, ...); it gets no key unless --api-key-env names the variable holding one",
    )
    ask.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="environment variable holding the key for --base-url",
    )
    _vote_options(ask)
    ask.add_argument("--show-samples", action="store_true", help="also print every sample's text")
    ask.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"allow runs of more than {MAX_CALLS} calls (models x repeats)",
    )
    ask.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="attempts in flight, overall and per endpoint (default 16 overall, 8 per endpoint); "
        "with --auto, over the whole run",
    )
    ask.add_argument(
        "--rate-limit",
        type=_positive_float,
        default=None,
        metavar="RPS",
        help="requests per second per endpoint (with --auto: the models' calls, not the planner's)",
    )
    ask.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    ask.add_argument(
        "--auto",
        action="store_true",
        help="let a planner choose the models from a catalog, run them and write the answer, "
        "scored against their samples (docs/controller.md)",
    )
    ask.add_argument("--catalog", metavar="FILE", default=None, help="catalog file for --auto")
    ask.add_argument("--planner", metavar="SPEC", default="local", help="planner for --auto")
    ask.add_argument(
        "--risk",
        choices=("low", "normal", "high"),
        default="normal",
        help="how many models and families --auto asks for (default normal)",
    )
    ask.set_defaults(func=_ask)


# --- batch ----------------------------------------------------------------------------------


def _load_prices(path: str | None) -> dict[str, Any] | None:
    """``--prices FILE``: ``{"model": [input, output]}`` (or a model card's ``price_in`` /
    ``price_out``) in USD per million tokens."""
    if path is None:
        return None
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the prices file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: prices are an object of name -> [input, output]")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, dict):  # {"price_in": .., "price_out": ..} as in a model card
            value = (value.get("price_in"), value.get("price_out"))
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _batch(args: argparse.Namespace) -> int:
    from ensemble._batch import read_rows, run_jsonl
    from ensemble.runner import Ensemble
    from ensemble.store import Store

    try:
        lines = Path(args.input).read_text("utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {args.input}: {exc}") from exc
    rows = read_rows(lines)
    models = _models(args)
    prices = _load_prices(args.prices)
    store = Store(args.store) if args.store else None
    try:
        ens = Ensemble(
            models=models,
            repeats=args.repeats,
            metric=args.metric,
            calibration=args.calibration,
            method=args.method,
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
            prices=prices,
            budget=args.budget,
            rate_limit=args.rate_limit,
        )
    except BaseException:
        if store is not None:
            store.close()
        raise
    run = args.run or (f"batch:{Path(args.input).resolve()}" if store else None)
    bar: Any = None
    if sys.stderr.isatty() and not args.quiet:
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
    if sys.stderr.isatty() and not args.quiet:
        print(
            f"{done} row(s), {failed} failed; {ens._durable.drawn} call(s) made, "
            f"{ens._durable.replayed} from the store; spent ${ens._durable.spent:.4f}",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed else EXIT_OK


def _add_batch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = sub.add_parser(
        "batch",
        help="run many prompts from a JSONL file, with a store, a budget and rate limits",
        description='Read {"id": ..., "prompt": ...} rows, write one {"id", "consensus"} or '
        '{"id", "error"} row per input row, in order. With --store, every sample is kept as it '
        "comes back: rerunning after a crash sends only what never came back. Exit status 3 "
        "when a row failed (its error row is in the output).",
    )
    batch.add_argument("input", metavar="INPUT.jsonl", help='rows of {"id": ..., "prompt": ...}')
    batch.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT.jsonl", help="one row per input row"
    )
    batch.add_argument("--store", metavar="FILE", help="SQLite store (cache and run journal)")
    batch.add_argument(
        "--run", metavar="NAME", help="run name in the store (default: from INPUT's path)"
    )
    batch.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        metavar="SPEC",
        help="model spec (repeatable; default: local)",
    )
    batch.add_argument(
        "-n", "--repeats", type=_positive_int, default=5, metavar="N", help="calls per model (5)"
    )
    _run_options(batch)
    batch.add_argument(
        "--base-url", metavar="URL", default=None, help="OpenAI-compatible server for openai:"
    )
    batch.add_argument(
        "--api-key-env", metavar="VAR", default=None, help="variable holding its key"
    )
    batch.add_argument("--metric", default="ngram", help=f"one of {', '.join(available_metrics())}")
    batch.add_argument(
        "--calibration",
        metavar="NAME|PATH",
        default=None,
        help="a packaged calibration or a calibration JSON file (docs/calibration.md)",
    )
    batch.add_argument(
        "--method",
        choices=["select", "fuse"],
        default="select",
        help="select one sample (default) or fuse the sentences most models state",
    )
    batch.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="attempts in flight, overall and per endpoint (16)",
    )
    batch.add_argument(
        "--budget", type=_positive_float, default=None, metavar="USD", help="spending cap"
    )
    batch.add_argument(
        "--prices", metavar="FILE", help='JSON: {"model": [input, output]} USD per 1M tokens'
    )
    batch.add_argument(
        "--rate-limit",
        type=_positive_float,
        default=None,
        metavar="RPS",
        help="requests per second per endpoint",
    )
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    batch.set_defaults(func=_batch)


# --- shared options -------------------------------------------------------------------------


def _parsed(kind: type[int] | type[float], **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=``: ``kind(text)`` checked by the library's own bounds checks."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        try:
            if kind is int:
                return check_int("the value", value, **bounds)
            return check_number("the value", value, **bounds)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_positive_int = _parsed(int, minimum=1)
_fraction = _parsed(float, low=0.0, high=1.0)
_positive_float = _parsed(float, low=0.0, low_open=True)


def _vote_options(parser: argparse.ArgumentParser) -> None:
    """How the samples are voted on and how the result is printed."""
    parser.add_argument(
        "--metric", default="ngram", help=f"one of {', '.join(available_metrics())}"
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=None,
        metavar="T",
        help="print only the spans whose confidence is at least T (0 to 1)",
    )
    parser.add_argument(
        "--calibration",
        metavar="NAME|PATH",
        default=None,
        help="map confidences to probabilities with a packaged calibration (ngram-wikibio, "
        "for --metric ngram) or a calibration JSON file; see docs/calibration.md",
    )
    parser.add_argument(
        "--method",
        choices=["select", "fuse"],
        default="select",
        help="select one sample (default) or fuse the sentences most models state "
        "(see docs/fuse.md)",
    )
    parser.add_argument("--json", action="store_true", help="print the Consensus as JSON")


def _run_options(parser: argparse.ArgumentParser) -> None:
    """How the models are called."""
    parser.add_argument(
        "--temperature", type=float, default=None, metavar="TEMP", help="for every model"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="base seed; repeat r gets S + r (default: random)",
    )
    parser.add_argument(
        "--system", default=None, metavar="TEXT", help="system prompt sent with every call"
    )
    parser.add_argument(
        "--max-tokens", type=_positive_int, default=None, metavar="N", help="answer length cap"
    )
    parser.add_argument(
        "--quorum",
        type=_positive_int,
        default=None,
        metavar="Q",
        help="fewest successful non-empty samples (default 1; an empty answer abstains)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="seconds per attempt (default 30)",
    )
    parser.add_argument(
        "--deadline",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="seconds for the whole run (default 120)",
    )


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_demo,
    _add_ask,
    _add_batch,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensemble",
        description="Ask several models several times and keep what they agree on.",
        epilog="exit status: 0 ok, 2 usage error, 3 the run failed (providers, quorum; "
        "batch: a row failed), "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


# --- the entry point ------------------------------------------------------------------------


def _report_error(exc: EnsembleError) -> int:
    # A vote that failed on a usage error (a plugin metric's MetricOutputError) comes as a
    # RunError keeping the samples; it is still a usage error for the exit status.
    if isinstance(exc, UsageError) or (
        type(exc) is RunError and isinstance(exc.__cause__, UsageError)
    ):
        print(f"ensemble: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, RunError):
        head = str(exc).splitlines()[0].rstrip(":; ")
        if isinstance(exc, QuorumError):
            head = exc.summary
        print(f"ensemble: error: {head}", file=sys.stderr)
        failures = [s for s in exc.samples if s.error is not None]
        if failures:
            print(f"{len(failures)} failed sample(s):", file=sys.stderr)
            for text in summarise_failures(failures):
                print(f"  - {text}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ensemble: error: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _stop_local_servers() -> None:
    process = sys.modules.get("ensemble.models._llama_process")
    if process is not None:
        process.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        _stop_local_servers()
        return EXIT_INTERRUPTED
    except EnsembleError as exc:
        return _report_error(exc)
    except BrokenPipeError:  # e.g. `ensemble demo | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
