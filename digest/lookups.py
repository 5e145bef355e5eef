"""``field__any=ids``: membership in a list of ids, sent as one array parameter on PostgreSQL.

A chunk's queries name its five hundred digests or subscribers. As ``__in`` each id is a
parameter of its own, which Django processes one by one and the server parses and plans one by
one: for a chunk-sized list that took longer than running the query (8 ms against 4 ms for one
list, measured on bench/delivery.py's database). ``__any`` sends ``= ANY(%s::bigint[])`` with the
ids as a single array, typed as the column is (see ``statement.array_parameter``). On other
databases it is ``__in``. For lists of ids in columns that hold no NULL (keys), which is all it
is used for.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field, ForeignKey, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):  # type: ignore[type-arg]
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> Any:
        # As ``__in``: None matches nothing (a column holding no NULL never equals it).
        return [int(value) for value in self.rhs if value is not None]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        if connection.vendor != "postgresql":
            fallback: Lookup = In(self.lhs, self.rhs)  # type: ignore[type-arg]
            sql, params = fallback.as_sql(compiler, connection)
            return sql, list(params)
        from digest.delivery.statement import array_parameter

        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY({array_parameter(self.lhs.output_field)})", [*lhs_params, self.rhs]


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignKey.register_lookup(AnyOf)
