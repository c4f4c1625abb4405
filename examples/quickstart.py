"""A first pipeline: eager tasks, a workflow and a parallel map."""

from daglite import map_tasks
from daglite import task
from daglite import workflow


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@workflow
def sum_of_squares(n: int = 10) -> int:
    return total(map_tasks(square, range(n), backend="thread"))


if __name__ == "__main__":
    print(sum_of_squares(10))
