"""The store: cache that keeps repeats distinct, journal and resume after kill -9, privacy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackServer, Recorded, Reply

from ensemble import Consensus, Ensemble, Escalation, RetryPolicy, Store, Tier, errors
from ensemble.models.openai import OpenAIModel

CANARY = "sk-CANARY-5d1e0c9a7b3f24e6aa18"
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def model(server: LoopbackServer, name: str = "a", **kw: Any) -> OpenAIModel:
    return OpenAIModel(name, base_url=server.openai_url, api_key=CANARY, **kw)


def ens(server: LoopbackServer, store: Store, **kw: Any) -> Ensemble:
    kw.setdefault("repeats", 4)
    kw.setdefault("retry", FAST)
    models = kw.pop("models", None) or [model(server)]
    return Ensemble(models=models, store=store, **kw)


def seeded(rec: Recorded) -> Reply:
    assert rec.body is not None
    return Reply(text=f"Canberra {rec.body.get('seed')}.")


async def run(e: Ensemble, prompt: str = "Capital of Australia?") -> Consensus:
    async with e:
        return await e.arun(prompt)


def key_of(rec: Recorded) -> tuple[str, str, Any]:
    assert rec.body is not None
    return (rec.body["messages"][-1]["content"], rec.body["model"], rec.body.get("seed"))


async def test_repeats_are_distinct_calls_then_none(server: LoopbackServer, tmp_path: Path) -> None:
    server.respond_with(seeded)
    with Store(tmp_path / "s.db") as store:
        first = await run(ens(server, store, seed=100))
        assert server.count() == 4
        assert len({key_of(r)[2] for r in server.requests}) == 4  # distinct seeds
        assert len(store) == 4
        second = await run(ens(server, store, seed=100))
        assert server.count() == 4  # nothing sent again
        assert second == first  # replayed samples are the samples, to the latency
        assert store.hits == 4


async def test_without_a_seed_the_store_still_replays(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.respond_with(seeded)
    with Store(tmp_path / "s.db") as store:
        first = await run(ens(server, store))
        second = await run(ens(server, store))
    assert server.count() == 4 and second == first
    assert len({s.seed for s in first.samples}) == 4


async def test_errors_are_never_cached(server: LoopbackServer, tmp_path: Path) -> None:
    server.script("a", Reply(text="Canberra."), Reply(status=400), Reply(text="Canberra."))
    with Store(tmp_path / "s.db") as store:
        first = await run(ens(server, store, repeats=3, seed=1))
        assert sum(not s.ok for s in first.samples) == 1
        assert len(store) == 2
        second = await run(ens(server, store, repeats=3, seed=1))
    assert server.count() == 4  # only the failed one was asked again
    assert all(s.ok for s in second.samples)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"system": "Be brief."},
        {"max_tokens": 10},
        {"seed": 8},
        {"models": "other-name"},
        {"models": "other-server"},
    ],
)
async def test_every_setting_is_in_the_key(
    server: LoopbackServer, server2: LoopbackServer, tmp_path: Path, change: dict[str, Any]
) -> None:
    server.respond_with(seeded)
    server2.respond_with(seeded)
    with Store(tmp_path / "s.db") as store:
        await run(ens(server, store, repeats=2, seed=7))
        kw = dict(change)
        if kw.get("models") == "other-name":
            kw["models"] = [model(server, "b")]
        elif kw.get("models") == "other-server":
            kw["models"] = [model(server2)]
        await run(ens(server, store, repeats=2, **{"seed": 7, **kw}))
    assert server.count() + server2.count() == 4


async def test_concurrent_identical_requests_share_one_call(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.respond_with(lambda rec: Reply(text="Canberra.", delay=0.3))
    with Store(tmp_path / "s.db") as store:
        e = ens(server, store, repeats=3, seed=5)
        async with e:
            a, b = await asyncio.gather(e.arun("q"), e.arun("q"))
    assert server.count() == 3
    assert a.samples == b.samples


async def test_file_is_private_json_and_keyless(server: LoopbackServer, tmp_path: Path) -> None:
    server.respond_with(seeded)
    path = tmp_path / "s.db"
    store = Store(path)
    await run(ens(server, store, repeats=2))
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, suffix
            assert CANARY.encode() not in p.read_bytes()
    store.close()
    assert CANARY.encode() not in path.read_bytes()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute("SELECT request, sample FROM samples").fetchall()
    assert len(rows) == 2
    for request, sample in rows:
        doc, s = json.loads(request), json.loads(sample)  # JSON, never pickle
        assert doc["model"] == "openai:a" and doc["repeat"] in (0, 1)
        assert doc["endpoint"].endswith(server.openai_url)
        assert s["text"].startswith("Canberra")


async def test_a_stored_sample_keeps_its_endpoint_without_userinfo(tmp_path: Path) -> None:
    from ensemble import FunctionModel

    class Leaky(FunctionModel):  # an adapter of one's own whose endpoint shows a key
        @property
        def endpoint(self) -> str:
            return f"custom@https://user:{CANARY}@host.example/v1?key={CANARY}"

    path = tmp_path / "s.db"
    store = Store(path)
    e = Ensemble(models=[Leaky(lambda p: "Canberra.", name="leaky")], repeats=1, store=store)
    result = await run(e)
    store.close()
    assert result.samples[0].ok and CANARY in (result.samples[0].endpoint or "")
    assert CANARY.encode() not in path.read_bytes()
    with sqlite3.connect(path) as db:
        (sample,) = db.execute("SELECT sample FROM samples").fetchone()
    assert json.loads(sample)["endpoint"] == "custom@https://host.example/v1"


def test_endpoint_userinfo_and_query_never_reach_the_key() -> None:
    from ensemble.store import _safe_endpoint

    safe = _safe_endpoint(f"openai@https://user:{CANARY}@host.example:8443/v1?key={CANARY}")
    assert safe == "openai@https://host.example:8443/v1"


async def test_unreadable_row_is_resent(
    server: LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond_with(seeded)
    path = tmp_path / "s.db"
    with Store(path) as store:
        await run(ens(server, store, repeats=2, seed=3))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE samples SET sample = substr(sample, 1, 20) WHERE rowid = 1")
    with Store(path) as store:
        result = await run(ens(server, store, repeats=2, seed=3))
    assert server.count() == 3 and all(s.ok for s in result.samples)
    assert "unreadable row" in caplog.text


def test_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(errors.ConfigurationError, match="not an ensemble store"):
        Store(bad)
    with pytest.raises(errors.ConfigurationError, match="directory"):
        Store(tmp_path)


async def test_resume_with_other_settings_is_refused(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.respond_with(seeded)
    with Store(tmp_path / "s.db") as store:
        e = ens(server, store, repeats=2)
        async with e:
            await e.amap(["a", "b"], run="nightly")
            await e.amap(["a", "b", "c"], run="nightly")  # same settings: a resume
        assert server.count() == 6
        other = ens(server, store, repeats=3)
        with pytest.raises(errors.ResumeMismatchError, match=r"repeats: 2 then, 3 now") as info:
            await other.amap(["a"], run="nightly")
        assert info.value.differences == {"repeats": (2, 3)}
        assert server.count() == 6  # refused before anything was sent


def test_escalation_uses_the_store(server: LoopbackServer, tmp_path: Path) -> None:
    server.respond_with(seeded)
    with Store(tmp_path / "s.db") as store:
        e = ens(server, store, repeats=3, models=[model(server, "a"), model(server, "b")])
        esc = Escalation(e, tiers=[Tier(repeats=2, models=["openai:a"]), Tier(repeats=3)])
        first = esc.run("q")
        sent = server.count()
        assert sent >= 2
        second = Escalation(
            ens(server, store, repeats=3, models=[model(server, "a"), model(server, "b")]),
            tiers=[Tier(repeats=2, models=["openai:a"]), Tier(repeats=3)],
        ).run("q")
    assert server.count() == sent and second.text == first.text


# --- kill -9 and resume ------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    from ensemble import Ensemble, RetryPolicy, Store
    from ensemble.models.openai import OpenAIModel
    url, db, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    models = [OpenAIModel(m, base_url=url, api_key="sk-child") for m in ("a", "b")]
    ens = Ensemble(models=models, repeats=3, store=Store(db), max_concurrency=4,
                   max_per_provider=4, retry=RetryPolicy(max_attempts=1))
    results = ens.map([f"prompt {i}" for i in range(n)], run="batch")
    with open(out, "w") as f:
        json.dump([r.model_dump(mode="json") for r in results], f)
    """
)


def _child(server: LoopbackServer, db: Path, out: Path, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, server.openai_url, str(db), str(out), str(n)], env=env
    )


def test_kill_9_then_resume_sends_only_what_never_came_back(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.respond_with(lambda rec: Reply(text=f"Answer {key_of(rec)[0]}.", delay=0.03))
    db, out, n = tmp_path / "s.db", tmp_path / "out.json", 20  # 20 prompts x 2 models x 3
    child = _child(server, db, out, n)
    deadline = time.monotonic() + 60
    while server.count() < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    sent_before = server.count()
    assert 40 <= sent_before < 120 and not out.exists()
    time.sleep(0.2)  # let the handlers of the killed calls finish

    assert _child(server, db, out, n).wait(120) == 0
    second = json.loads(out.read_text())
    seen = Counter(key_of(r) for r in server.requests)
    assert len(seen) == 120  # every (prompt, model, repeat) was asked
    assert sum(seen.values()) - 120 <= 4  # twice only if in flight at the kill

    total = server.count()
    assert _child(server, db, out, n).wait(120) == 0
    assert server.count() == total  # the third run sends nothing
    third = json.loads(out.read_text())
    assert third == second
    assert all(r["text"] == f"Answer prompt {i}." for i, r in enumerate(third))


def test_a_torn_wal_tail_is_tolerated(tmp_path: Path) -> None:
    """kill -9 in the middle of writes, then tear the last bytes of the WAL off."""
    db = tmp_path / "s.db"
    writer = textwrap.dedent(
        """
        import sys
        from ensemble import Sample, Store
        store = Store(sys.argv[1])
        i = 0
        while True:
            s = Sample(text="x" * 500, model="m", repeat=i)
            store.put(f"k{i}", "{}", s)
            i += 1
            if i == 200:
                print("ready", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", writer, str(db)], env=env, stdout=subprocess.PIPE
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    wal = Path(f"{db}-wal")
    assert wal.exists() and wal.stat().st_size > 1000
    with wal.open("r+b") as f:  # a half-written last frame
        f.truncate(wal.stat().st_size - 700)
    with Store(db) as store:
        n = len(store)
        assert n >= 190
        assert store.get("k0") is not None and store.get("k0").text == "x" * 500  # type: ignore[union-attr]


async def test_a_waiter_cancelled_at_its_deadline_does_not_cancel_the_others(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.respond_with(lambda rec: Reply(text="Canberra.", delay=0.5))
    with Store(tmp_path / "s.db") as store:
        leader = ens(server, store, repeats=2, seed=5)
        hasty = ens(server, store, repeats=2, seed=5, deadline=0.1)
        patient = ens(server, store, repeats=2, seed=5)
        async with leader, hasty, patient:
            first = asyncio.ensure_future(leader.arun("q"))
            while server.count() < 2:
                await asyncio.sleep(0.01)
            cut, waited = await asyncio.gather(
                hasty.asample("q"), patient.asample("q"), return_exceptions=True
            )
            await first
    assert server.count() == 2
    assert isinstance(cut, tuple) and all(s.error is not None for s in cut)
    assert isinstance(waited, tuple) and all(s.ok for s in waited)


@pytest.mark.parametrize("bad", ["\ud800.db", "runs\x00.db"])
def test_a_store_path_no_file_can_have_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="store path must be a file path"):
        Store(bad)
