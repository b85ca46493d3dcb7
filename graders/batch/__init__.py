"""The parallel batch pipeline behind `graders batch`, `graders rescore` and `CompiledGrader.run_many`.

`pipeline` shards blocks of rows over worker processes and yields results in input order; `shard` is the
per-row path each worker runs (decode, namespaces, grade, encode); `reader` cuts input into blocks; `layout` maps
rows and shapes output lines; `resume` keeps the sidecar and continues interrupted runs; `progress`, `summary` and
`report` are what a person sees.
"""

from .cores import available_cores
from .layout import Layout
from .run import BatchJob, run_batch

__all__ = ["BatchJob", "Layout", "available_cores", "run_batch"]
