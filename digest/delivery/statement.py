"""One SQL statement that runs on the database server while this process goes on working.

A worker sends digests one by one, and the statement that records one as sent and claims the
next costs a round trip and a commit each time. On PostgreSQL it is sent with libpq's
asynchronous call (on Django's own connection, so in the same transaction state as every other
query) and its result is read when it is needed: the server runs it while the worker renders
the next message. Nothing that depends on the statement happens before its result is read, so
the order of effects is the same as with a plain query. Other databases run it at once.

A statement sent for every digest can also be given a name: it is then prepared once per
connection (parsed and planned once, by the server) and each later call sends only its
parameters. Parsing and planning were most of the server's work for the claim (in a chunk
run, PostgreSQL's CPU per digest went from 1.0 to 0.65 ms, on the core the worker shares with
the rest). ``DATABASE_PREPARED_STATEMENTS=false`` turns that off, for a connection pooler in
transaction mode that does not keep prepared statements (PgBouncer before 1.21, or without
``max_prepared_statements``). Should the server lose one anyway (``DEALLOCATE``, ``DISCARD
ALL``), the call that meets the loss fails and the next one prepares it again.
"""

from __future__ import annotations

import functools
import re
import selectors
import time
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Field
from psycopg import errors as pg_errors
from psycopg import pq

_PLACEHOLDER = re.compile(r"%s")


@functools.lru_cache(maxsize=32)
def numbered(sql: str) -> str:
    """Django's ``%s`` placeholders as libpq's ``$1, $2, ...`` (the SQL has no other ``%``)."""
    counter = iter(range(1, sql.count("%s") + 1))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _param(param: Any) -> tuple[bytes | None, int]:
    """A parameter in libpq's text form, and its type (0: the server infers it, as for NULL, or
    the SQL casts it, as for arrays: ``%s::bigint[]``). Ints and strings, nearly all of a
    claim's parameters, come first: this runs for every digest."""
    kind = type(param)
    if kind is int:
        return str(param).encode(), 20  # int8
    if kind is str:
        return param.encode(), 25  # text
    if param is None:
        return None, 0
    if kind is float:
        return repr(param).encode(), 701  # float8
    if kind is list:
        return _array(param), 0
    if isinstance(param, datetime):
        if param.tzinfo is None:
            raise ValueError("a naive datetime has no place in a timestamptz parameter")
        return param.isoformat().encode(), 1184  # timestamptz
    raise TypeError(f"unsupported parameter type {kind.__name__}")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(values: list[Any]) -> bytes:
    """A one-dimensional array in PostgreSQL's text input form: ``{1,2}``, ``{"a","b \\"c\\""}``
    (every string quoted, so commas, braces, spaces and the word NULL stay text). Elements are
    all int, all int or float, or all str."""
    kinds = set(map(type, values))
    if kinds <= {int}:
        body = ",".join(map(str, values))
    elif kinds <= {int, float}:
        body = ",".join(map(repr, values))
    elif kinds <= {str}:
        body = ",".join(map(_quoted, values))
    else:
        names = ", ".join(sorted(kind.__name__ for kind in kinds))
        raise TypeError(f"unsupported array elements: {names}")
    return f"{{{body}}}".encode()


def array_parameter(field: Field[Any, Any]) -> str:
    """A parameter holding an array of ``field``'s column type, without length limits (as
    Django's bulk insert does). Left to itself psycopg picks the array type from the values
    (int2[] for small ids), and a comparison with a bigint column was then planned ten times
    slower once items accumulated (0.8 ms per digest with 200,000 items)."""
    return f"%s::{str(field.db_type(connection)).split('(')[0]}[]"


Row = tuple[int, ...]


class Pending:
    """A statement sent and not yet read. ``rows()`` waits for it (once)."""

    def __init__(
        self, rows: list[Row] | None = None, pgconn: Any = None, sql: str = "", db: Any = None
    ) -> None:
        self._rows = rows
        self._pgconn = pgconn
        self._sql = sql
        self._db = db
        self._started = time.monotonic()

    def first_column(self) -> list[int]:
        """The first column of the rows the statement returned."""
        return [row[0] for row in self.rows()]

    def rows(self) -> list[Row]:
        """The rows the statement returned (integer columns only)."""
        if self._rows is None:
            pgconn, self._pgconn = self._pgconn, None
            if pgconn is None:
                raise RuntimeError("the result of this statement was already read")
            db = self._db
            try:
                with db.wrap_database_errors:
                    self._rows = _read(pgconn)
            except DatabaseError as error:
                # Every result was read: the connection takes the next query. A prepared
                # statement the server no longer knows is prepared again by the next call.
                if getattr(error.__cause__, "sqlstate", None) == UNKNOWN_PREPARED:
                    _prepared.pop(db.connection, None)
                raise
            except BaseException:
                # Interrupted (a task time limit, say) with results unread, the connection
                # cannot take another query; closing it lets Django open a fresh one.
                db.close()
                raise
            if db.queries_logged:  # DEBUG, or a test counting queries: one like any other
                elapsed = time.monotonic() - self._started
                db.queries_log.append({"sql": self._sql, "time": f"{elapsed:.3f}"})
        return self._rows


DUPLICATE_PREPARED = "42P05"
UNKNOWN_PREPARED = "26000"


def _sqlstate(result: Any) -> str | None:
    code = result.error_field(pq.DiagnosticField.SQLSTATE)
    return code.decode() if code else None


# The statements prepared on each connection, by name (with their SQL, to catch a name given
# to two statements). A connection Django opens anew starts with none.
_prepared: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def _prepare(db: Any, name: str, sql: str, types: list[int]) -> bytes:
    """``name`` prepared on this connection (once), its parameter types taken from the first
    call (0 where the server infers one, as for NULL)."""
    known = _prepared.setdefault(db.connection, {})
    if name not in known:
        pgconn = db.connection.pgconn
        result = pgconn.prepare(name.encode(), sql.encode(), types)
        if _sqlstate(result) == DUPLICATE_PREPARED:  # left by another client of a pooler
            pgconn.exec_(b"DEALLOCATE " + pq.Escaping(pgconn).escape_identifier(name.encode()))
            result = pgconn.prepare(name.encode(), sql.encode(), types)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise pg_errors.error_from_result(result, encoding="utf-8")
        known[name] = sql
    elif known[name] != sql:
        raise ValueError(f"the statement name {name!r} is already given to another statement")
    return name.encode()


def start(sql: str, params: Sequence[Any], name: str | None = None) -> Pending:
    """Send ``sql`` (Django placeholders; int, float, str, aware datetime, None or list
    parameters, a list cast to its array type in the SQL; integer columns in what it returns);
    read its rows with ``rows()`` or ``first_column()``. Until then the connection is busy: run
    no other query in between. Django's execute wrappers see the statement being sent, as they
    see any query. With a ``name`` (for a statement sent again and again), it is prepared once
    per connection and each call sends only its parameters (see the module's docstring)."""
    # The connection itself, not Django's proxy to it: each attribute of the proxy is a
    # context-local lookup, and this runs for every digest.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.in_atomic_block:
        # Inside atomic(), psycopg sends its BEGIN lazily with the first query; a statement
        # sent around psycopg could miss it and commit on its own. It runs at once there.
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return Pending(rows=[tuple(map(int, row)) for row in cursor.fetchall()])

    def send(query: str, params: Sequence[Any], many: bool, context: dict[str, Any]) -> Pending:
        db.ensure_connection()
        pgconn = db.connection.pgconn
        with db.wrap_database_errors:
            encoded = [_param(param) for param in params]
            values, types = [value for value, _ in encoded], [oid for _, oid in encoded]
            # An execute wrapper may have put another statement in its place: sent as it is.
            if name is not None and query == sql and settings.DATABASE_PREPARED_STATEMENTS:
                pgconn.send_query_prepared(_prepare(db, name, numbered(query), types), values)
            else:
                pgconn.send_query_params(numbered(query).encode(), values, types)
            if pgconn.flush():  # 1: part of the query is still to be written
                with selectors.DefaultSelector() as selector:
                    selector.register(pgconn.socket, selectors.EVENT_WRITE)
                    while pgconn.flush():
                        selector.select()
        return Pending(pgconn=pgconn, sql=query, db=db)

    execute: Any = send
    for wrapper in reversed(db.execute_wrappers):
        execute = functools.partial(wrapper, execute)
    return cast(Pending, execute(sql, params, False, {"connection": db, "cursor": None}))


def _read(pgconn: Any) -> list[Row]:
    """Every result of the statement sent (libpq needs them all read), then its rows."""
    results = []
    pgconn.consume_input()  # usually all there by now: no need to wait on the socket
    while True:
        if pgconn.is_busy():
            with selectors.DefaultSelector() as selector:
                selector.register(pgconn.socket, selectors.EVENT_READ)
                while pgconn.is_busy():
                    selector.select()
                    pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        results.append(result)
    rows: list[Row] = []
    for result in results:
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise pg_errors.error_from_result(result, encoding="utf-8")
        columns = range(result.nfields)
        rows.extend(
            tuple(int(result.get_value(row, column)) for column in columns)
            for row in range(result.ntuples)
        )
    return rows
