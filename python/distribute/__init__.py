"""``webtensor.distribute``: ``tf.distribute``'s strategies.

- :class:`MirroredStrategy`: synchronous data parallelism over devices of one process (``"wasm:0"``,
  ``"wasm:1"``: an engine each, in parallel threads).
- :class:`MultiWorkerMirroredStrategy`: the same over Ray worker actors (``pip install
  webtensor[distributed]``), one per process or machine.
- :class:`ParameterServerStrategy` with :class:`ClusterCoordinator`: asynchronous training, parameter
  server actors holding shards of the variables, worker actors computing gradients.

How the parts map onto TensorFlow's distributed architecture (client, master, workers, parameter
servers): the client is the Python process that builds and traces the model; it is also the
master — it compiles the step once into an artifact (``replica.py``) and ships it to the workers,
which run it on their engines and never re-trace; parameter servers are actors applying updates.
"""
from .strategy import (MirroredStrategy, PerReplica, ReduceOp, Strategy, compute_average_loss, get_replica_context,
                       get_strategy, has_strategy)
from .values import MirroredVariable, ReplicaContext
from .cluster import ClusterCoordinator, MultiWorkerMirroredStrategy, ParameterServerStrategy, RemoteValue

__all__ = ["Strategy", "MirroredStrategy", "MultiWorkerMirroredStrategy", "ParameterServerStrategy",
           "ClusterCoordinator", "RemoteValue", "PerReplica", "ReduceOp", "get_strategy", "has_strategy",
           "get_replica_context", "compute_average_loss", "MirroredVariable", "ReplicaContext"]
