"""``@task.notebook``: a TaskFlow function that returns the notebook's parameters.

::

    @task.notebook(input_nb="report.ipynb", output_nb="out/report_{date}.ipynb")
    def report(date: str) -> dict:
        return {"date": date}

    report.expand(date=["2019-11-05", "2019-11-06", "2019-11-07"])

The function runs first (with the usual TaskFlow arguments and context); the dict it returns is
merged over the operator's ``parameters`` and the notebook runs as ``NotebookOperator`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, determine_kwargs, task_decorator_factory
from airflow.sdk.definitions.context import context_merge

from .operator import NotebookOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.decorator import TaskDecorator


class _NotebookDecoratedOperator(DecoratedOperator, NotebookOperator):
    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *NotebookOperator.template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **NotebookOperator.template_fields_renderers,
    }
    custom_operator_name = "@task.notebook"

    def __init__(
        self,
        *,
        python_callable: Callable,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs
        )

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        returned = self.python_callable(*self.op_args, **kwargs)
        if returned is not None:
            if not isinstance(returned, Mapping):
                raise TypeError(
                    f"@task.notebook function {self.python_callable.__name__} must return a dict "
                    f"of parameters or None, not {type(returned).__name__}"
                )
            self.parameters = {**(self.parameters or {}), **returned}
        return NotebookOperator.execute(self, context)


def notebook_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function returning notebook parameters into a ``NotebookOperator`` task."""
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_NotebookDecoratedOperator,
        **kwargs,
    )
