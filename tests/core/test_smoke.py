from daglite import map_tasks
from daglite import session
from daglite import task
from daglite import workflow


@task
def add(x: int, y: int) -> int:
    return x + y


def test_eager_call_returns_value():
    assert add(2, 3) == 5


def test_workflow_and_map():
    @workflow
    def wf(n: int) -> list[int]:
        return map_tasks(add, range(n), range(n))

    assert wf(4) == [0, 2, 4, 6]
    with session(backend="thread"):
        assert map_tasks(add, [1, 2], [3, 4]) == [4, 6]
