"""Warm actors on a real cluster of two Ray nodes on 127.0.0.1 (`ray.cluster_utils`).

A head node with 1 CPU and a worker node with 3: the session's 4 actors go 1 and 3, by the
CPUs each node has left (they hold none themselves, so Ray alone would not weigh them so).
In a subprocess: Ray connects a process to one cluster, and this one has the local Ray.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
from collections import Counter

import ray
from ray.cluster_utils import Cluster

from daglite import map_tasks
from daglite import session
from daglite import task


@task
def where(x):
    context = ray.get_runtime_context()
    return context.get_actor_id(), context.get_node_id()


cluster = Cluster(
    initialize_head=True,
    head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
)
try:
    cluster.add_node(num_cpus=3, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    head = ray.get_runtime_context().get_node_id()
    with session(backend="ray") as ctx:
        map_tasks(where, range(4))
        map_tasks(where, range(4))  # the session's second map starts its actors
        actors = ctx.get_backend("ray").transport._actors
        nodes = ray.get([actor.handle.ready.remote() for actor in actors], timeout=120)
        count = Counter("head" if node == head else "worker" for node in nodes)
        print("actors", sorted(count.items()), flush=True)
        ran = map_tasks(where, range(64), chunksize=4)
        print("on actors", None not in {actor for actor, _ in ran}, flush=True)
        print("nodes", sorted({"head" if node == head else "worker" for _, node in ran}))
    ray.shutdown()
finally:
    cluster.shutdown()
"""


def test_actors_are_placed_by_the_cpus_of_each_node(tmp_path):
    root = tempfile.mkdtemp(prefix="dgn-", dir="/tmp")  # Ray's socket paths must stay short
    script = tmp_path / "nodes.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DAGLITE_"))}
    # a node on 127.0.0.1 only, and no usage reporting
    env.update(RAY_TMPDIR=root, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        subprocess.run(["rm", "-rf", root], check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "actors [('head', 1), ('worker', 3)]",  # not 2 and 2, nor 0 and 4
        "on actors True",
        "nodes ['head', 'worker']",
    ]
