"""Which aggregates merge exactly from partial results, and how.

Each mergeable aggregate becomes one or more partial aggregates, computed per split
and named `_a0`, `_a1`, ...; the merge combines those columns over every split:

    SUM(x)             SUM(x)                          SUM(_a)
    COUNT(x), COUNT(*) COUNT(x)                        CAST(SUM(_a) AS BIGINT) (0 over nothing)
    COUNT_IF(p)        COUNT_IF(p)                     SUM(_a) (NULL over no rows, as DuckDB)
    MIN, MAX           MIN(x), MAX(x)                  MIN(_a), MAX(_a)
    BOOL_AND, BOOL_OR  the same                        the same over _a
    BIT_AND/OR/XOR     the same                        the same over _a
    ANY_VALUE(x)       ANY_VALUE(x)                    ANY_VALUE(_a)
    AVG(x) (numbers)   SUM(x), COUNT(x)                CAST(SUM(_s) AS DOUBLE) / SUM(_n)
    VAR_POP, VAR_SAMP, VARIANCE, STDDEV, STDDEV_POP, STDDEV_SAMP (numbers):
                       COUNT(x) _n, AVG(x::DOUBLE) _m, VAR_POP(x::DOUBLE) * COUNT(x) _q
                       merged as Chan et al. combine them: with the overall mean
                       M = SUM(_n * _m) / SUM(_n) (a window over the group's partial
                       rows), M2 = SUM(_q) + SUM(_n * (_m - M)^2); VAR_POP = M2 / n,
                       VAR_SAMP = M2 / (n - 1) (NULL for n < 2), STDDEV = SQRT(VAR).
                       DOUBLE, as DuckDB's own; equal up to rounding.

`agg(DISTINCT x)` (COUNT, SUM, AVG, MIN, MAX) merges when every DISTINCT aggregate
of the query has the same argument: the partial groups by x too (`_d0`), so each
split sends its distinct values, and the merge runs the same aggregate with
DISTINCT over `_d0`. `agg(...) FILTER (WHERE p)` keeps its filter in the partial.
Everything else (MEDIAN, QUANTILE, MODE, STRING_AGG, LIST, APPROX_*, FIRST, ...)
raises NotDistributable: no partial step. A grouped block then runs shuffled by its
group keys, each group whole in one task (planner/holistic.py,
planner/shuffle_aggregate.py); one without GROUP BY runs exactly, as one task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from duckfleet.planner.fallback import NotDistributable

# DuckDB 2.0's aggregate functions (duckdb_functions() of type 'aggregate'): a
# function sqlglot does not know is one of these, or scalar. Kept complete by
# tests/test_planner_safety.py.
DUCKDB_AGGREGATES = frozenset(
    "any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max "
    "arg_max_null arg_max_nulls_last arg_min arg_min_null arg_min_nulls_last argmax argmin "
    "array_agg avg bit_and bit_or bit_xor bitstring_agg bool_and bool_or combine_aggr corr "
    "count count_if count_star countif covar_pop covar_samp decimal_average entropy favg "
    "first fsum group_concat histogram histogram_exact kahan_sum kurtosis kurtosis_pop last "
    "list listagg lttb mad max max_by mean median min min_by mode product quantile "
    "quantile_cont quantile_disc regr_avgx regr_avgy regr_count regr_intercept regr_r2 "
    "regr_slope regr_sxx regr_sxy regr_syy reservoir_quantile sem skewness stddev "
    "stddev_pop stddev_samp string_agg sum sum_no_overflow sumkahan var_pop var_samp "
    "variance variant_group_object".split()
)

_SAME = (exp.Sum, exp.Min, exp.Max, exp.LogicalAnd, exp.LogicalOr, exp.AnyValue)
_BITWISE = (exp.BitwiseAndAgg, exp.BitwiseOrAgg, exp.BitwiseXorAgg)
VARIANCES = (exp.Variance, exp.VariancePop, exp.Stddev, exp.StddevPop, exp.StddevSamp)
MERGEABLE = (*_SAME, *_BITWISE, *VARIANCES, exp.Count, exp.CountIf, exp.Avg)
_DISTINCT_OK = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
# The names DuckDB spells each class with, where sqlglot reads others as it too
# (`arbitrary` is FIRST in DuckDB, ANY_VALUE in sqlglot; `mean` is AVG in both).
_SPELLINGS: dict[type[exp.Expression], frozenset[str]] = {
    exp.AnyValue: frozenset({"any_value"}),
    exp.Avg: frozenset({"avg", "mean"}),
    exp.CountIf: frozenset({"count_if", "countif"}),
}


# sqlglot's names for functions DuckDB users spell otherwise (in EXPLAIN's reasons)
_DUCKDB_NAMES = {
    "PERCENTILE_CONT": "QUANTILE_CONT",
    "PERCENTILE_DISC": "QUANTILE_DISC",
    "GROUP_CONCAT": "STRING_AGG",
}


def aggregate_name(node: exp.Expression) -> str:
    func = function_of(node)
    name = func.sql_name() if isinstance(func, exp.Func) else node.key.upper()
    return _DUCKDB_NAMES.get(name, name)


def function_of(node: exp.Expression) -> exp.Expression:
    """The aggregate function of a FILTER or IGNORE NULLS wrapper."""
    while isinstance(node, exp.Filter | exp.IgnoreNulls):
        node = node.this
    return node


def distinct_argument(node: exp.Expression) -> exp.Expression | None:
    """x of agg(DISTINCT x), else None (MIN and MAX ignore DISTINCT: None)."""
    func = function_of(node)
    if isinstance(func, exp.Min | exp.Max):
        return None
    inner = func.this if isinstance(func, exp.AggFunc) else None
    if isinstance(inner, exp.Distinct):
        expressions = inner.expressions
        return expressions[0] if len(expressions) == 1 else inner
    return None


def check_aggregate(node: exp.Expression, sql: str) -> None:
    """Raise NotDistributable unless `node` (an aggregate, maybe under FILTER or
    IGNORE NULLS) merges exactly; `sql` is the statement text, for spellings."""
    func = function_of(node)
    name = (_spelled(func, sql) or aggregate_name(node)).upper()
    if not isinstance(func, MERGEABLE):
        raise NotDistributable(f"one task: {name} cannot be merged exactly")
    spelled = _spelled(func, sql)
    allowed = _SPELLINGS.get(type(func))
    if allowed is not None and spelled is not None and spelled not in allowed:
        raise NotDistributable(f"one task: {name} cannot be merged exactly")
    if isinstance(node, exp.IgnoreNulls) and not isinstance(func, exp.AnyValue):
        raise NotDistributable(f"one task: {name} IGNORE NULLS cannot be merged yet")
    distinct = distinct_argument(node)
    if distinct is not None:
        if not isinstance(func, _DISTINCT_OK) or isinstance(distinct, exp.Distinct):
            raise NotDistributable(f"one task: {name}(DISTINCT ...) cannot be merged yet")
        if isinstance(node, exp.Filter):
            raise NotDistributable(f"one task: {name}(DISTINCT ...) FILTER cannot be merged yet")
    extra = {k for k, v in func.args.items() if v and k not in ("this", "big_int")}
    if extra or isinstance(func.this, exp.Order):
        raise NotDistributable(f"one task: {func.sql(dialect='duckdb')} cannot be merged yet")
    if isinstance(func, (exp.Avg, *VARIANCES)):
        argument = func.this.type if func.this is not None else None
        if argument is None or not argument.is_type(*exp.DataType.NUMERIC_TYPES):
            what = argument.sql(dialect="duckdb") if argument is not None else "unknown"
            raise NotDistributable(f"one task: {name} over {what} values cannot be merged yet")


def _spelled(func: exp.Expression, sql: str) -> str | None:
    """The function's name as the statement spells it, lower case, if known."""
    start, end = func.meta.get("start"), func.meta.get("end")
    if start is None or end is None or end >= len(sql):
        return None
    spelled = sql[start : end + 1].lower()
    return spelled if spelled.replace("_", "").isalnum() else None


@dataclass
class Merger:
    """Builds the merge of each aggregate, registering its partial aggregates.

    `partial(expr)` names a partial aggregate `_aN` (identical ones share a name);
    `mean(n, m, keys)` names a window column holding a variance's overall mean;
    `distinct` is the partial's `_d0` column when DISTINCT aggregates are merged.
    """

    grouped: bool
    distinct: exp.Column | None = None
    partials: dict[exp.Expression, exp.Column] = field(default_factory=dict)
    means: dict[tuple[str, str], exp.Column] = field(default_factory=dict)

    def partial(self, agg: exp.Expression) -> exp.Column:
        return self.partials.setdefault(agg, exp.column(f"_a{len(self.partials)}")).copy()

    def mean(self, n: exp.Column, m: exp.Column) -> exp.Column:
        return self.means.setdefault((n.name, m.name), exp.column(f"_m{len(self.means)}")).copy()

    def merge(self, node: exp.Expression) -> exp.Expression:
        func = function_of(node)
        if distinct_argument(node) is not None:
            assert self.distinct is not None
            # COUNT(DISTINCT) is never NULL, over no rows at all neither
            return type(func)(this=exp.Distinct(expressions=[self.distinct.copy()]))
        wrap = _wrapper(node)
        if isinstance(func, _SAME + _BITWISE):
            return type(func)(this=self.partial(wrap(func)))
        if isinstance(func, exp.Count):
            return self._count(exp.Sum(this=self.partial(wrap(func))))
        if isinstance(func, exp.CountIf):  # NULL over no rows at all, as DuckDB's
            return exp.Sum(this=self.partial(wrap(func)))
        argument = func.this.copy()
        if isinstance(func, exp.Avg):
            total = exp.Sum(this=self.partial(wrap(exp.Sum(this=argument))))
            count = exp.Sum(this=self.partial(wrap(exp.Count(this=argument.copy(), big_int=True))))
            return exp.Div(
                this=exp.cast(total, exp.DataType.Type.DOUBLE),
                expression=exp.Nullif(this=count, expression=exp.Literal.number(0)),
            )
        assert isinstance(func, VARIANCES)
        return self._variance(func, argument, wrap)

    def _count(self, count: exp.Expression) -> exp.Expression:
        count = exp.cast(count, exp.DataType.Type.BIGINT)
        return count if self.grouped else _zero_if_null(count)

    def _variance(
        self,
        func: exp.Expression,
        argument: exp.Expression,
        wrap: Callable[[exp.Expression], exp.Expression],
    ) -> exp.Expression:
        value = exp.cast(argument, exp.DataType.Type.DOUBLE)
        n = self.partial(wrap(exp.Count(this=argument.copy(), big_int=True)))
        m = self.partial(wrap(exp.Avg(this=value.copy())))
        q = self.partial(
            exp.Mul(
                this=wrap(exp.VariancePop(this=value.copy())),
                expression=wrap(exp.Count(this=argument.copy(), big_int=True)),
            )
        )
        mean = self.mean(n, m)
        count = exp.Sum(this=n.copy())
        spread = exp.Mul(
            this=n.copy(),
            expression=exp.Pow(
                this=exp.Paren(this=exp.Sub(this=m.copy(), expression=mean)),
                expression=exp.Literal.number(2),
            ),
        )
        m2 = exp.Add(this=exp.Sum(this=q.copy()), expression=exp.Sum(this=spread))
        if isinstance(func, exp.VariancePop | exp.StddevPop):
            variance: exp.Expression = exp.Div(this=exp.Paren(this=m2), expression=count)
        else:
            variance = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.GT(this=count.copy(), expression=exp.Literal.number(1)),
                        true=exp.Div(
                            this=exp.Paren(this=m2),
                            expression=exp.Paren(
                                this=exp.Sub(this=count.copy(), expression=exp.Literal.number(1))
                            ),
                        ),
                    )
                ]
            )
        if isinstance(func, exp.Stddev | exp.StddevPop | exp.StddevSamp):
            return exp.Sqrt(this=variance)
        return variance


def _wrapper(node: exp.Expression) -> Callable[[exp.Expression], exp.Expression]:
    """How to wrap a partial aggregate so that it keeps the node's FILTER."""
    if isinstance(node, exp.Filter):
        condition = node.expression
        return lambda agg: exp.Filter(this=agg, expression=condition.copy())
    return lambda agg: agg


def _zero_if_null(value: exp.Expression) -> exp.Expression:
    """An aggregate over no partial rows at all is NULL where COUNT says 0."""
    return exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
