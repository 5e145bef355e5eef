"""The statement a worker starts before it renders the next message: on PostgreSQL the server
runs it while the worker goes on, and it behaves like any other query (errors, parameters,
execute wrappers, the query log); elsewhere it runs at once. The suite runs on both."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from digest.delivery import statement
from digest.models import DeliveryControl

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = connection.vendor == "postgresql"


def test_placeholders_are_numbered_for_libpq() -> None:
    assert statement.numbered("a = %s OR (b = %s AND c = %s)") == "a = $1 OR (b = $2 AND c = $3)"


def test_the_server_runs_the_statement_while_the_worker_goes_on() -> None:
    sql = "SELECT 7 FROM pg_sleep(1)" if ON_POSTGRES else "SELECT 7"
    began = time.monotonic()
    pending = statement.start(sql, [])
    if ON_POSTGRES:
        pgconn = connection.connection.pgconn
        pgconn.consume_input()
        assert pgconn.is_busy()  # sent, and still running on the server: not waited for
    assert pending.first_column() == [7]
    if ON_POSTGRES:
        assert time.monotonic() - began >= 1  # the result was waited for when read
    assert pending.first_column() == [7]  # read once, kept


def test_parameters_of_every_kind_reach_the_server() -> None:
    moment = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    if ON_POSTGRES:
        sql = (
            "SELECT %s + 1 WHERE %s = 'x ''y''' AND %s = '2026-11-29T12:00:00Z'::timestamptz "
            "AND %s::int8 IS NULL"
        )
    else:
        sql = "SELECT %s + 1 WHERE %s = 'x ''y''' AND %s IS NOT NULL AND %s IS NULL"
    assert statement.start(sql, [41, "x 'y'", moment, None]).first_column() == [42]
    assert statement.start(sql, [41, "other", moment, None]).first_column() == []


def test_a_failing_statement_raises_a_database_error_and_the_connection_goes_on() -> None:
    with pytest.raises(DatabaseError):
        statement.start("SELECT id FROM no_such_table", []).first_column()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 5")
        assert cursor.fetchone() == (5,)


def test_execute_wrappers_and_the_query_log_see_the_statement() -> None:
    seen: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(spy):
        assert statement.start("SELECT %s + 2", [1]).first_column() == [3]
    assert seen == ["SELECT %s + 2"]
    assert len(captured) == 1 and "SELECT" in captured[0]["sql"]

    def refuse(*_: Any) -> Any:
        raise DatabaseError("the database went away")

    with connection.execute_wrapper(refuse), pytest.raises(DatabaseError):
        statement.start("SELECT 1", [])


def test_arrays_reach_the_server_element_by_element() -> None:
    """Lists go as PostgreSQL arrays (the SQL casts them): every string arrives as it was,
    whatever quotes, separators or words it holds."""
    texts = ['a "quoted" word', "back\\slash", "comma, {brace}", "NULL", "", " padded ", "é ✓"]
    sql = (
        "SELECT 1 WHERE %s::bigint[] = ARRAY[1, -2, 9007199254740993]::bigint[] "
        "AND %s::double precision[] = ARRAY[0.1, 2, -1e-300]::double precision[] "
        "AND %s::text[] = %s::text[] AND %s::double precision = 0.25"
    )
    ints, floats = [1, -2, 9007199254740993], [0.1, 2, -1e-300]
    if not ON_POSTGRES:  # PostgreSQL's form, which the server parses on the other runs
        assert statement._array(ints) == b"{1,-2,9007199254740993}"
        assert statement._array(floats) == b"{0.1,2,-1e-300}"
        assert statement._array(['say "hi"', "a\\b", "x,{y}", "NULL"]) == (
            b'{"say \\"hi\\"","a\\\\b","x,{y}","NULL"}'
        )
        return
    with connection.cursor() as cursor:  # psycopg's own adaptation, for comparison
        cursor.execute("SELECT %s::text[]", [texts])
        assert cursor.fetchone() == (texts,)
    assert statement.start(sql, [ints, floats, texts, texts, 0.25]).first_column() == [1]
    assert statement.start(sql, [ints, floats, texts, texts[::-1], 0.25]).first_column() == []


def test_rows_of_several_integer_columns_are_read() -> None:
    sql = "SELECT 1, 2 UNION ALL SELECT 3, 4 ORDER BY 1"
    assert statement.start(sql, []).rows() == [(1, 2), (3, 4)]


@pytest.mark.parametrize("param", [True, b"bytes", datetime(2026, 11, 29)])
def test_parameters_it_cannot_send_as_they_are_are_refused(param: Any) -> None:
    if not ON_POSTGRES:  # Django adapts them itself there
        assert statement.start("SELECT 1 WHERE %s IS NOT NULL", [param]).first_column() == [1]
        return
    with pytest.raises((TypeError, ValueError)):
        statement.start("SELECT 1 WHERE %s IS NOT NULL", [param])


@pytest.mark.parametrize("values", [[1, "mixed"], [[1], [2]], [True], [b"bytes"]])
def test_arrays_of_anything_but_numbers_or_strings_are_refused(values: list[Any]) -> None:
    with pytest.raises(TypeError):
        statement._param(values)


def test_inside_atomic_the_statement_is_part_of_the_transaction() -> None:
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": False})
    sql = 'UPDATE "digest_deliverycontrol" SET "paused" = %s WHERE "id" = %s RETURNING "id"'
    with pytest.raises(RuntimeError), transaction.atomic():
        assert statement.start(sql, [True, 1]).first_column() == [1]
        raise RuntimeError("roll back")
    assert DeliveryControl.objects.get(pk=1).paused is False


class Interrupted(BaseException):
    """Like a task time limit arriving while the worker waits for the result."""


def test_an_interrupted_read_leaves_a_connection_that_takes_the_next_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(pgconn: Any) -> list[int]:
        raise Interrupted

    monkeypatch.setattr(statement, "_read", interrupted)
    pending = statement.start("SELECT 7 FROM pg_sleep(0.2)" if ON_POSTGRES else "SELECT 7", [])
    if ON_POSTGRES:
        with pytest.raises(Interrupted):
            pending.first_column()
    else:
        assert pending.first_column() == [7]  # read at once: nothing left to interrupt
    with connection.cursor() as cursor:
        cursor.execute("SELECT 5")
        assert cursor.fetchone() == (5,)


def _prepared_here() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


LOOKUP = 'SELECT "id" FROM "digest_deliverycontrol" WHERE "id" = %s OR "id" = %s'


def test_a_named_statement_is_prepared_once_per_connection_and_answers_like_a_plain_one() -> None:
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": False})
    # NULL first: the parameters' types come from the SQL, and later calls send numbers.
    assert statement.start(LOOKUP, [None, None], "test_lookup").first_column() == []
    assert statement.start(LOOKUP, [1, None], "test_lookup").first_column() == [1]
    assert statement.start(LOOKUP, [2, 3], "test_lookup").first_column() == []
    if ON_POSTGRES:
        assert "test_lookup" in _prepared_here()
        connection.close()  # a new connection has none prepared: it prepares it again
    assert statement.start(LOOKUP, [None, 1], "test_lookup").first_column() == [1]
    if ON_POSTGRES:
        assert "test_lookup" in _prepared_here()


def test_one_name_for_two_statements_is_refused_where_statements_are_prepared() -> None:
    assert statement.start(LOOKUP, [1, 1], "test_twice").first_column() in ([], [1])
    if ON_POSTGRES:
        with pytest.raises(ValueError, match="already given"):
            statement.start("SELECT %s", [1], "test_twice")
    else:  # run at once, the name unused
        assert statement.start("SELECT %s", [1], "test_twice").first_column() == [1]


def test_a_named_statement_that_fails_to_prepare_raises_a_database_error() -> None:
    with pytest.raises(DatabaseError):
        statement.start("SELECT id FROM no_such_table WHERE id = %s", [1], "test_broken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 5")
        assert cursor.fetchone() == (5,)
    if ON_POSTGRES:
        assert "test_broken" not in _prepared_here()


def test_prepared_statements_can_be_switched_off(settings: Any) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": False})
    assert statement.start(LOOKUP, [1, 2], "test_off").first_column() == [1]
    if ON_POSTGRES:
        assert "test_off" not in _prepared_here()


def test_an_execute_wrapper_may_put_another_statement_in_place_of_a_named_one() -> None:
    def instead(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        return execute("SELECT %s + 100", [params[0]], many, context)

    with connection.execute_wrapper(instead):
        assert statement.start(LOOKUP, [1, 2], "test_wrapped").first_column() == [101]
    if ON_POSTGRES:
        assert "test_wrapped" not in _prepared_here()


def test_a_prepared_statement_the_server_lost_is_prepared_again() -> None:
    """DEALLOCATE (or a pooler's DISCARD ALL) drops it on the server: the call that meets the
    loss fails like any query, and the next one prepares it again."""
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": False})
    assert statement.start(LOOKUP, [1, 2], "test_lost").first_column() == [1]
    if ON_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
        with pytest.raises(DatabaseError):
            statement.start(LOOKUP, [1, 2], "test_lost").first_column()
    assert statement.start(LOOKUP, [1, 2], "test_lost").first_column() == [1]
    if ON_POSTGRES:
        assert "test_lost" in _prepared_here()


def test_a_name_the_server_already_holds_is_taken_over() -> None:
    """A pooler may hand over a server connection where another client prepared the same name
    (another version of the statement, say): it is replaced, not an error."""
    DeliveryControl.objects.update_or_create(pk=1, defaults={"paused": False})
    if ON_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("PREPARE test_taken AS SELECT 99")
    assert statement.start(LOOKUP, [1, 2], "test_taken").first_column() == [1]
    assert statement.start(LOOKUP, [2, 1], "test_taken").first_column() == [1]
