"""Replicas sharing their state in PostgreSQL: calls cross replicas, every event counts once."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from webtest import TestApp

from exporter.domain.labels import LabelConfig
from exporter.errors import StateError
from exporter.storage.postgres.clock import NOW, DatabaseClock
from exporter.storage.store import ERROR, Entry
from tests.http_helpers import answer, assert_invariant, hangup, new_call, total, value
from tests.postgres_cluster import Cluster
from tests.storage.shared_replicas import Replica, Replicas, replicas, summed
from tests.tcp_proxy import proxy_to

__all__ = ["replicas"]

CALLED_BACK_NUMBER = "4930123456"


def test_a_call_answered_and_ended_on_other_replicas_counts_as_on_one(replicas: Replicas) -> None:
    a, b, c = (replicas.start(name) for name in "abc")
    a.post(new_call("c1", "in"))
    time.sleep(0.3)
    b.post(answer("c1"))
    time.sleep(0.2)
    ended = c.post(hangup("c1")).ended
    assert [(call.outcome, call.legs) for call in ended] == [("answered", 1)]
    assert ended[0].wait is not None
    assert 0.3 <= ended[0].wait < 1.0
    assert ended[0].duration is not None
    assert 0.2 <= ended[0].duration < 1.0
    everyone = (a, b, c)
    assert summed(everyone, "sipgate_calls_total", direction="in") == 1
    assert summed(everyone, "sipgate_calls_ended_total", outcome="answered") == 1
    assert summed(everyone, "sipgate_call_wait_seconds_count", outcome="answered") == 1
    assert summed(everyone, "sipgate_call_duration_seconds_count") == 1
    # Each replica counted what it did: the call's start on a, its end on c.
    assert total(a.samples(), "sipgate_calls_total") == 1
    assert total(c.samples(), "sipgate_calls_ended_total") == 1
    assert total(b.samples(), "sipgate_calls_total") == 0
    assert total(b.samples(), "sipgate_webhook_requests_total", event="answer") == 1


def test_gauges_come_from_one_replica_and_the_sums_hold_the_invariant(
    replicas: Replicas,
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    for replica in (a, b):
        replica.sweep()  # takes the gauges lock if nobody holds it
    a.post(new_call("ringing", "in"))
    b.post(new_call("talking", "in"))
    a.post(answer("talking"))
    b.post(new_call("done", "out"))
    a.post(hangup("done", direction="out"))
    leaders = [replica for replica in (a, b) if replica.store.leader]
    assert len(leaders) == 1
    others = [replica for replica in (a, b) if not replica.store.leader]
    assert total(others[0].samples(), "sipgate_calls_active") == 0
    assert total(others[0].samples(), "sipgate_calls_ringing_since_timestamp_seconds") == 0
    assert summed((a, b), "sipgate_calls_active", direction="in", state="ringing") == 1
    assert summed((a, b), "sipgate_calls_active", direction="in", state="talking") == 1
    assert summed((a, b), "sipgate_calls_active", direction="out") == 0
    since = summed((a, b), "sipgate_calls_ringing_since_timestamp_seconds", direction="in")
    assert time.time() - 5 < since <= time.time()
    assert_invariant([*a.samples(), *b.samples()])


def test_the_gauges_move_to_another_replica_when_their_holder_stops(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    a.sweep()
    b.sweep()
    assert a.store.leader
    assert not b.store.leader
    a.post(new_call("c1", "in"))
    replicas.stop(a)
    b.sweep()
    assert b.store.leader
    assert summed((b,), "sipgate_calls_active", state="ringing") == 1


def test_a_replica_started_again_under_its_name_continues_its_counters(
    replicas: Replicas,
) -> None:
    a = replicas.start("a")
    a.post(new_call("c1", "in"))
    a.post(answer("c1"))
    a.post(hangup("c1"))
    before = a.samples()
    replicas.stop(a)
    again = replicas.start("a")
    after = again.samples()
    for name in (
        "sipgate_calls_total",
        "sipgate_calls_ended_total",
        "sipgate_call_wait_seconds_count",
        "sipgate_call_wait_seconds_sum",
        "sipgate_call_duration_seconds_bucket",
        "sipgate_calls_offered_total",
        "sipgate_webhook_requests_total",
    ):
        assert total(after, name) == pytest.approx(total(before, name)), name
    assert total(after, "sipgate_calls_total") == 1


def test_a_second_live_replica_with_the_same_name_is_refused(replicas: Replicas) -> None:
    replicas.start("a")
    with pytest.raises(StateError, match="replica a is already running"):
        replicas.start("a")


def test_two_replicas_sweeping_at_once_end_each_call_once(replicas: Replicas) -> None:
    flags = ("--calls.forward-grace=200ms", "--calls.expire-after=1s")
    a, b = replicas.start("a", *flags), replicas.start("b", *flags)
    for number in range(20):
        a.post(new_call(f"forwarded-{number}", "in"))
        b.post(hangup(f"forwarded-{number}", cause="forwarded"))
        b.post(new_call(f"quiet-{number}", "in"))
    time.sleep(1.2)
    sweepers = [threading.Thread(target=replica.sweep) for replica in (a, b) for _ in range(3)]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join()
    assert summed((a, b), "sipgate_calls_ended_total", outcome="forwarded") == 20
    assert summed((a, b), "sipgate_calls_ended_total", outcome="expired") == 20
    assert summed((a, b), "sipgate_calls_total") == 40
    a.sweep()
    assert_invariant([*a.samples(), *b.samples()])


def test_a_missed_caller_called_back_from_another_replica_is_settled_once(
    replicas: Replicas,
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    a.sweep()
    a.post(new_call("missed", "in", caller=CALLED_BACK_NUMBER))
    b.post(hangup("missed", cause="cancel"))
    assert summed((a, b), "sipgate_callbacks_pending") == 1
    b.post(new_call("back", "out", callee=CALLED_BACK_NUMBER))
    a.post(answer("back", direction="out"))
    b.post(hangup("back", direction="out"))
    assert summed((a, b), "sipgate_callbacks_total", result="called_back") == 1
    assert summed((a, b), "sipgate_callbacks_pending") == 0
    assert summed((a, b), "sipgate_callback_delay_seconds_count") == 1


def test_the_replica_holding_the_gauges_bounds_calls_and_debts_in_progress(
    replicas: Replicas,
) -> None:
    flags = ("--calls.max-open=3", "--callbacks.max-pending=2")
    a, b = replicas.start("a", *flags), replicas.start("b", *flags)
    a.sweep()
    assert a.store.leader
    for number in range(4):  # four missed callers: four debts
        caller = f"49301234{number:04d}"
        a.post(new_call(f"missed-{number}", "in", caller=caller))
        b.post(hangup(f"missed-{number}", cause="cancel"))
    for number in range(5):  # five calls that never end
        (a if number % 2 else b).post(new_call(f"open-{number}", "in"))
    b.sweep()  # not the holder of the gauges: bounds nothing
    assert summed((a, b), "sipgate_calls_evicted_total") == 0

    a.sweep()

    assert summed((a, b), "sipgate_calls_active") == 3
    assert summed((a, b), "sipgate_calls_evicted_total") == 2
    assert summed((a, b), "sipgate_calls_ended_total", outcome="expired") == 2
    assert summed((a, b), "sipgate_callbacks_pending") == 2
    assert summed((a, b), "sipgate_callbacks_dropped_total") == 2
    with a.store.connection() as connection:
        left = connection.execute(
            "SELECT call_id FROM sipgate_exporter.open_calls ORDER BY call_id"
        ).fetchall()
    assert [row[0] for row in left] == ["open-2", "open-3", "open-4"]  # the oldest went
    assert_invariant([*a.samples(), *b.samples()])


def test_calls_ending_in_the_same_sweep_leave_room_under_the_bound(replicas: Replicas) -> None:
    a = replicas.start("a", "--calls.max-open=3", "--calls.forward-grace=200ms")
    a.sweep()
    for number in range(4):
        a.post(new_call(f"open-{number}", "in"))
    a.post(new_call("forwarded", "in"))  # the newest, and its grace ends before the sweep
    a.post(hangup("forwarded", cause="forwarded"))
    time.sleep(0.3)

    a.sweep()

    assert summed((a,), "sipgate_calls_active") == 3
    assert summed((a,), "sipgate_calls_evicted_total") == 1  # open-0 alone
    assert summed((a,), "sipgate_calls_ended_total", outcome="forwarded") == 1


def test_the_cap_on_users_with_a_label_of_their_own_is_the_replicas_together(
    replicas: Replicas,
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    for replica in (a, b):
        replica.recorder.tracker.configure_labels(LabelConfig(per_user=True, max_users=2))
    answers = [(a, "Ann"), (b, "Bo"), (a, "Cy"), (b, "Ann"), (b, "Cy"), (a, "Bo")]
    for number, (replica, user) in enumerate(answers):
        replica.post(new_call(f"c{number}", "in"))
        replica.post(answer(f"c{number}", user=user))
        replica.post(hangup(f"c{number}"))

    by_user: dict[str, float] = {}
    for replica in (a, b):
        for sample in replica.samples():
            if sample.name == "sipgate_user_calls_answered_total":
                user = sample.labels["user"]
                by_user[user] = by_user.get(user, 0.0) + sample.value
    assert by_user == {"Ann": 2.0, "Bo": 2.0, "other": 2.0}
    assert summed((a, b), "sipgate_label_values_overflow_total", label="user") == 2


def test_an_unreachable_database_refuses_with_503_until_it_is_back(
    state_url: str, postgres: Cluster
) -> None:
    with proxy_to(postgres.port) as proxy:
        replicas = Replicas(state_url.replace(f":{postgres.port}/", f":{proxy.port}/"))
        try:
            a = replicas.start("a")
            web = TestApp(a.app)
            assert web.post("/webhook", new_call("c1", "in")).status_int == 200
            proxy.cut()
            refused = web.post("/webhook", answer("c1"), expect_errors=True)
            assert refused.status_int == 503
            assert "try another replica" in refused.text
            a.sweep()
            ready = web.get("/-/ready", expect_errors=True)
            assert ready.status_int == 503
            assert "state database" in ready.text
            proxy.restore()
            assert web.post("/webhook", answer("c1")).status_int == 200
            a.sweep()
            assert web.get("/-/ready").status_int == 200
            assert web.post("/webhook", hangup("c1")).status_int == 200
            samples = a.samples()
            replicas.stop(a)
            # The refusal, counted by the process while the database was away, was kept since.
            again = replicas.start("a").samples()
        finally:
            replicas.close()
    assert value(samples, "sipgate_state_write_errors_total", part="database") >= 1
    assert value(samples, "sipgate_webhook_requests_total", event="answer", code="503") == 1
    assert value(again, "sipgate_webhook_requests_total", event="answer", code="503") == 1
    assert value(again, "sipgate_webhook_requests_total", event="answer", code="200") == 1
    assert value(samples, "sipgate_calls_ended_total", direction="in", outcome="answered") == 1


def test_connections_the_database_dropped_are_replaced_without_refusing_an_event(
    replicas: Replicas, state_url: str
) -> None:
    a = replicas.start("a", "--web.threads=3")
    web = TestApp(a.app)
    for number in range(3):
        assert web.post("/webhook", new_call(f"c{number}", "in")).status_int == 200
    with psycopg.connect(state_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for number in range(3):
        assert web.post("/webhook", answer(f"c{number}")).status_int == 200
    a.sweep()
    assert web.get("/-/ready").status_int == 200
    assert summed((a,), "sipgate_calls_active", state="talking") == 3


def call_records(state_url: str) -> list[dict[str, object]]:
    """The rows of the call records table, oldest first."""
    with psycopg.connect(state_url, autocommit=True) as connection:
        cursor = connection.execute(
            "SELECT call_id, direction, line, team, user_name, outcome, hangup_cause, caller,"
            " callee, wait_seconds, talk_seconds, ended_at - started_at AS lasted"
            " FROM sipgate_exporter.calls ORDER BY id"
        )
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def test_every_ended_call_is_a_call_record_with_its_numbers(
    replicas: Replicas, state_url: str
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    a.post(new_call("answered", "in", caller="4930111111", callee="4921100000"))
    time.sleep(0.2)
    b.post(answer("answered"))
    a.post(hangup("answered"))
    b.post(new_call("missed", "in", caller="4930222222"))
    a.post(hangup("missed", cause="cancel"))
    a.post(new_call("ringing", "in"))
    records = call_records(state_url)
    assert [(r["call_id"], r["outcome"], r["hangup_cause"]) for r in records] == [
        ("answered", "answered", "normalClearing"),
        ("missed", "missed", "cancel"),
    ]
    answered = records[0]
    assert (answered["caller"], answered["callee"]) == ("4930111111", "4921100000")
    assert (answered["direction"], answered["line"], answered["team"]) == ("in", "other", "other")
    wait, talk = answered["wait_seconds"], answered["talk_seconds"]
    assert isinstance(wait, float)
    assert 0.2 <= wait < 1.0
    assert isinstance(talk, float)
    assert talk < 1.0
    assert records[1]["talk_seconds"] is None


@pytest.mark.parametrize(("numbers", "shown"), [("masked", "4930****11"), ("none", None)])
def test_call_records_keep_numbers_masked_or_not_at_all(
    replicas: Replicas, state_url: str, numbers: str, shown: str | None
) -> None:
    a = replicas.start("a", f"--state.call-records-numbers={numbers}")
    a.post(new_call("c1", "in", caller="4930111111"))
    a.post(hangup("c1", cause="cancel"))
    [record] = call_records(state_url)
    assert record["caller"] == shown
    with psycopg.connect(state_url, autocommit=True) as connection:
        row = connection.execute("SELECT party IS NOT NULL FROM sipgate_exporter.calls").fetchone()
    assert row == (numbers != "none",), "without numbers, no hash of them either"


def test_call_records_older_than_their_retention_are_deleted(
    replicas: Replicas, state_url: str
) -> None:
    a = replicas.start("a", "--state.call-records-retention=1s")
    a.post(new_call("old", "in"))
    a.post(hangup("old", cause="cancel"))
    assert len(call_records(state_url)) == 1
    time.sleep(1.2)
    a.sweep()  # takes the gauges lock, and with it the clean-up
    assert call_records(state_url) == []


def test_histograms_counted_in_other_buckets_start_from_zero(
    replicas: Replicas, state_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = replicas.start("a")
    a.post(new_call("c1", "in"))
    a.post(answer("c1"))
    a.post(hangup("c1"))
    replicas.stop(a)
    with psycopg.connect(state_url, autocommit=True) as connection:
        connection.execute("UPDATE sipgate_exporter.replicas SET buckets = '[[1], [2], [3]]'")
    again = replicas.start("a")
    samples = again.samples()
    assert total(samples, "sipgate_call_wait_seconds_count") == 0
    assert total(samples, "sipgate_call_duration_seconds_count") == 0
    assert total(samples, "sipgate_calls_ended_total") == 1, "counters are kept"
    assert "buckets changed since its counts were kept" in caplog.text
    replicas.stop(again)
    kept = replicas.start("a")
    assert total(kept.samples(), "sipgate_calls_ended_total") == 1
    assert caplog.text.count("buckets changed") == 1, "said once, when they changed"


def test_counters_read_again_keep_this_processs_request_times(replicas: Replicas) -> None:
    a = replicas.start("a")
    a.post(new_call("c1", "in"))
    a.recorder.requests.observe(0.01)
    a.store._stale = True  # as after a commit whose outcome was unknown
    a.sweep()
    samples = a.samples()
    assert value(samples, "sipgate_webhook_request_duration_seconds_count") == 1
    assert value(samples, "sipgate_webhook_requests_total", event="newCall", code="200") == 1


def test_sessions_read_committed_whatever_the_databases_default(
    replicas: Replicas, state_url: str
) -> None:
    with psycopg.connect(state_url, autocommit=True) as admin:
        admin.execute("SELECT set_config('default_transaction_isolation', 'serializable', false)")
        database = admin.info.dbname
        admin.execute(
            f'ALTER DATABASE "{database}" SET default_transaction_isolation = serializable'
        )
    with psycopg.connect(state_url) as other:
        assert other.execute("SHOW transaction_isolation").fetchone() == ("serializable",)
    a = replicas.start("a")
    seen = a.store.record(
        Entry(ERROR, 0.0),
        lambda: a.store.current().connection.execute("SHOW transaction_isolation").fetchone(),
    )
    assert seen == ("read committed",)


def test_a_write_the_database_refuses_commits_nothing_and_leaves_no_transaction_open(
    replicas: Replicas, state_url: str
) -> None:
    a = replicas.start("a")
    web = TestApp(a.app)
    with psycopg.connect(state_url, autocommit=True) as admin:
        admin.execute(
            "ALTER TABLE sipgate_exporter.open_calls "
            "ADD CONSTRAINT not_this_one CHECK (call_id <> 'refused')"
        )
        refused = web.post("/webhook", new_call("refused", "in"), expect_errors=True)
        assert refused.status_int == 503
        assert not a.store._stale, "the server refused the commit: nothing to read again"
        assert web.post("/webhook", new_call("c1", "in")).status_int == 200
        states = admin.execute(
            "SELECT state FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        assert states
        assert all(state == "idle" for (state,) in states), states
        rows = admin.execute("SELECT call_id FROM sipgate_exporter.open_calls").fetchall()
    assert rows == [("c1",)]
    samples = a.samples()
    assert value(samples, "sipgate_calls_total", direction="in") == 1
    assert value(samples, "sipgate_webhook_requests_total", event="newCall", code="503") == 1


def test_a_commit_whose_connection_is_lost_is_counted_by_what_the_database_kept(
    replicas: Replicas, state_url: str
) -> None:
    a = replicas.start("a")
    web = TestApp(a.app)
    with psycopg.connect(state_url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$"
        )
        admin.execute(
            "CREATE TRIGGER slow BEFORE INSERT ON sipgate_exporter.open_calls "
            "FOR EACH ROW WHEN (NEW.call_id = 'lost') EXECUTE FUNCTION slow()"
        )

        def cut_when_writing() -> None:
            for _ in range(100):
                time.sleep(0.05)
                (cut,) = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
                ).fetchone() or (0,)
                if cut:
                    return

        cutter = threading.Thread(target=cut_when_writing)
        cutter.start()
        lost = web.post("/webhook", new_call("lost", "in"), expect_errors=True)
        cutter.join()
        assert lost.status_int == 503
        assert a.store._stale, "the outcome is unknown: the counters are read again"
        admin.execute("DROP TRIGGER slow ON sipgate_exporter.open_calls")
    a.sweep()
    assert not a.store._stale
    samples = a.samples()
    assert total(samples, "sipgate_calls_total") == 0, "the database kept nothing"
    assert web.post("/webhook", new_call("lost", "in")).status_int == 200


def test_a_call_opened_on_two_replicas_at_once_counts_once(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    ids = [f"c{number}" for number in range(20)]

    def open_all(replica: Replica) -> None:
        for call_id in ids:
            replica.post(new_call(call_id, "in"))

    both = [threading.Thread(target=open_all, args=(replica,)) for replica in (a, b)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    a.post(new_call("c0", "in"))  # once more, after the others committed
    assert summed((a, b), "sipgate_calls_total", direction="in") == len(ids)
    assert summed((a, b), "sipgate_events_unmatched_total", event="newCall") == len(ids) + 1
    a.sweep()
    b.sweep()
    assert summed((a, b), "sipgate_calls_active", state="ringing") == len(ids)


def test_the_database_clock_is_read_without_asking_the_database(state_url: str) -> None:
    clock = DatabaseClock()
    assert clock.now() is None
    with psycopg.connect(state_url, autocommit=True) as connection:
        clock.measure(connection)
        time.sleep(0.2)
        estimated = clock.now()
        (database,) = connection.execute(NOW).fetchone() or (None,)
    assert estimated is not None
    assert abs(estimated - float(database)) < 0.05
