"""Data-parallel training across processes, on JAX's own engine.

`distribution: data_parallel` runs one process per host (or per GPU). The
processes join one `jax.distributed` cluster, and Keras's
`keras.distribution.DataParallel` spreads every training batch over all the
devices of all the processes: the recipe's batch size is the global batch, each
process feeds `batch / processes` images of it, and the gradients are averaged
by JAX's collectives (gloo on CPUs, NCCL on GPUs).

How a process learns where the others are, in this order:

1. `kerazoo finetune RECIPE --coordinator HOST:PORT --num-processes N
   --process-id I` (`Cluster` fields);
2. the environment variables `KERAZOO_COORDINATOR`, `KERAZOO_NUM_PROCESSES`,
   `KERAZOO_PROCESS_ID` (`ENVIRONMENT`);
3. neither: `jax.distributed.initialize()` detects the cluster itself (SLURM,
   Open MPI, Kubernetes and the others JAX knows); where it finds none, the run
   is one process over its own devices.

A process that does not join within `timeout` seconds
(`--distributed-timeout`, `KERAZOO_DISTRIBUTED_TIMEOUT`) ends every process
that waits for it, with a message naming it. A process that dies later breaks
the next collective of the others (gloo reports its closed connection at
once), and `watching_peers` ends each of them with a message naming the
processes it may have been and the way to resume; one blocked outside a
collective is ended by JAX's heartbeat within `timeout`.

Data: each process reads its own shard of the training split
(`ImageData.sharded`), repeated so that every process runs the same number of
steps. Validation and test splits are read whole by every process, in order;
each process takes its rows of every global batch (`World.evaluation`), the
last batch padded with rows of weight 0, so the numbers are those of one
process.
"""

import contextlib
import dataclasses
import os
import re
import sys
import threading

import numpy as np

ENVIRONMENT = {
    "coordinator": "KERAZOO_COORDINATOR",
    "num_processes": "KERAZOO_NUM_PROCESSES",
    "process_id": "KERAZOO_PROCESS_ID",
    "timeout": "KERAZOO_DISTRIBUTED_TIMEOUT",
}
# Where a process other than 0 keeps its private copy of the run (kept after
# the run); unset, a temporary folder removed at the end.
PRIVATE_DIR = "KERAZOO_PRIVATE_DIR"
DEFAULT_TIMEOUT = 300
# JAX's own deadline is later than kerazoo's, so that kerazoo's message (which
# names the missing processes) comes first.
_JAX_GRACE = 30


class DistributedError(RuntimeError):
    """A cluster that cannot start; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where a process finds the others.

    Args:
        coordinator: `HOST:PORT` of process 0's coordination service.
        num_processes: Processes in the job.
        process_id: This process's index, in `[0, num_processes)`.
        timeout: Seconds to wait for every process to join (and for a silent
            process to be taken as dead).

    Example:

    >>> Cluster.from_env(environ={"KERAZOO_COORDINATOR": "10.0.0.1:1234",
    ...     "KERAZOO_NUM_PROCESSES": "2", "KERAZOO_PROCESS_ID": "1"})
    Cluster(coordinator='10.0.0.1:1234', num_processes=2, process_id=1, timeout=300)
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    timeout: int = DEFAULT_TIMEOUT

    @classmethod
    def from_env(
        cls,
        coordinator=None,
        num_processes=None,
        process_id=None,
        timeout=None,
        environ=None,
    ):
        """The cluster the arguments name, each missing one read from its
        environment variable (`ENVIRONMENT`).

        Raises:
            DistributedError: A value that is not a number, a process id out
                of range, or a coordinator without the process count and id.
        """
        environ = os.environ if environ is None else environ
        given = {
            "coordinator": coordinator,
            "num_processes": num_processes,
            "process_id": process_id,
            "timeout": timeout,
        }
        values = {}
        for key, value in given.items():
            if value is None:
                value = environ.get(ENVIRONMENT[key]) or None
            if value is not None and key != "coordinator":
                value = _integer(key, value)
            values[key] = value
        if values["timeout"] is None:
            values["timeout"] = DEFAULT_TIMEOUT
        cluster = cls(**values)
        cluster.check()
        return cluster

    @property
    def given(self):
        """Whether any of coordinator, process count and id is set."""
        return any(
            v is not None
            for v in (self.coordinator, self.num_processes, self.process_id)
        )

    def check(self):
        """Raises `DistributedError` for values that cannot start a cluster."""
        if self.timeout <= 0:
            raise DistributedError(
                f"timeout: {self.timeout}; give a positive number of seconds "
                f"(--distributed-timeout or {ENVIRONMENT['timeout']})"
            )
        if not self.given:
            return
        missing = [
            f"--{key.replace('_', '-')} ({ENVIRONMENT[key]})"
            for key in ("coordinator", "num_processes", "process_id")
            if getattr(self, key) is None
        ]
        if missing:
            raise DistributedError(
                f"a cluster needs coordinator, process count and process id; "
                f"missing: {', '.join(missing)}"
            )
        if self.num_processes < 1:
            raise DistributedError(
                f"num_processes: {self.num_processes}; it must be 1 or more"
            )
        if not 0 <= self.process_id < self.num_processes:
            raise DistributedError(
                f"process_id: {self.process_id}; it must be in "
                f"[0, {self.num_processes}) for {self.num_processes} processes"
            )
        if not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", self.coordinator):
            raise DistributedError(
                f"coordinator: {self.coordinator!r}; give HOST:PORT, e.g. "
                "127.0.0.1:12345"
            )


def _integer(key, value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DistributedError(
            f"{key}: {value!r} is not a whole number (--{key.replace('_', '-')} "
            f"or {ENVIRONMENT[key]})"
        ) from None


@dataclasses.dataclass
class World:
    """The processes of a run and this one's place among them.

    `World()` is one process with no distribution: its methods give back
    what they are given, so the engine runs one code path.

    Attributes:
        process_id: This process's index (0 writes the run's files).
        num_processes: Processes in the job.
        devices: Devices of all processes together.
    """

    process_id: int = 0
    num_processes: int = 1
    devices: int = 1
    distributed: bool = False

    @property
    def writer(self):
        """Whether this process writes the run's files (process 0)."""
        return self.process_id == 0

    def describe(self):
        return (
            f"data_parallel over {self.devices} devices of {self.num_processes} "
            f"processes (this is process {self.process_id})"
        )

    def local_batch(self, global_batch, key):
        """This process's share of a global batch.

        Raises:
            DistributedError: A batch that the devices do not split evenly
                (named by `key`).
        """
        if not self.distributed:
            return global_batch
        if global_batch % self.devices:
            raise DistributedError(
                f"{key}: {global_batch} images do not split evenly over "
                f"{self.devices} devices ({self.num_processes} processes); "
                f"choose a multiple of {self.devices}"
            )
        return global_batch // self.num_processes

    def evaluation_batch(self, batch):
        """`batch` rounded up to a multiple of the device count."""
        if not self.distributed:
            return batch
        return -(-batch // self.devices) * self.devices

    def steps(self, images, global_batch):
        """Steps of a training epoch (None: until the data ends): as many as
        one process would take, `ceil(images / global_batch)`."""
        if not self.distributed:
            return None
        return max(1, -(-images // global_batch))

    def training(self, dataset, local_batch):
        """A process's training batches, endless: its shard's batches
        repeated (reshuffled every pass) and cut into full `local_batch`es,
        so that no process runs out before the others."""
        if not self.distributed:
            return dataset
        return dataset.repeat().rebatch(local_batch, drop_remainder=True)

    def evaluation(self, dataset, global_batch, padding=None):
        """This process's rows of every global batch of `dataset` (the
        whole split batched by `global_batch`, in the same order in every
        process), each with a weight: 1, or 0 for the rows that pad the last
        batch to full size.

        Args:
            dataset: `(images, labels)` batches.
            global_batch: Their batch size, a multiple of the device count.
            padding: A `Padding` that counts the rows, or None.

        Returns:
            `dataset` itself when not distributed, else a dataset of
            `(images, labels, weights)`.
        """
        if not self.distributed:
            return dataset
        import tensorflow as tf  # tf.data is the input pipeline of every backend

        local = global_batch // self.num_processes
        start = self.process_id * local
        padding = padding or Padding()

        def pad(x, y):
            real = tf.shape(x)[0]
            extra = global_batch - real
            counted = tf.numpy_function(
                padding.add, [real, extra], tf.float32, stateful=True
            )

            def padded(t):
                widths = [[0, extra]] + [[0, 0]] * (len(t.shape) - 1)
                return tf.pad(t, widths)[start : start + local]

            weights = tf.concat([tf.ones([real]), tf.zeros([extra])], 0)
            # `counted` is 0; adding it keeps the count in the graph.
            return padded(x), padded(y), weights[start : start + local] + counted

        return dataset.map(pad)

    def predict(self, model, dataset, global_batch):
        """`model`'s outputs for the images of an `(images, labels)`
        dataset (the whole split batched by `global_batch`, in order, in
        every process), as one numpy array in every process."""
        if not self.distributed:
            return model.predict(dataset.map(lambda x, y: x), verbose=0)
        from jax.experimental import multihost_utils  # only for distributed runs

        batches = self.evaluation(dataset, global_batch)
        outputs = []
        for x, _, w in batches.as_numpy_iterator():
            local = np.asarray(model.predict_on_batch(x))
            rows = multihost_utils.process_allgather(local, tiled=True)
            weights = multihost_utils.process_allgather(w, tiled=True)
            outputs.append(rows[weights > 0])
        return np.concatenate(outputs)

    def barrier(self, name):
        """Waits until every process reaches this point."""
        if self.distributed:
            from jax.experimental import multihost_utils  # only for distributed runs

            multihost_utils.sync_global_devices(name)

    def same_everywhere(self, values, what):
        """Raises `DistributedError` unless every process holds the same
        `values` (numbers); `what` says what they are."""
        if not self.distributed:
            return
        from jax.experimental import multihost_utils  # only for distributed runs

        local = np.asarray(values, np.int64)
        every = multihost_utils.process_allgather(local)
        if not (every == every[0]).all():
            rows = ", ".join(
                f"process {i}: {row.tolist()}" for i, row in enumerate(every)
            )
            raise DistributedError(
                f"the processes disagree on {what} ({rows}): each must see "
                "process 0's output_dir (a shared file system)"
            )


class Padding:
    """Counts the real and padding rows an evaluation pass went through."""

    def __init__(self):
        self.real = 0
        self.extra = 0

    def add(self, real, extra):
        self.real += int(real)
        self.extra += int(extra)
        return np.float32(0)

    def reset(self):
        self.real = self.extra = 0

    def loss_scale(self):
        """What turns Keras's mean loss over padded batches (the padding
        weighs 0 but counts in each batch's size) into the mean over real
        rows."""
        return (self.real + self.extra) / self.real if self.real else 1.0


_started = {}


def current():
    """The `World` this process joined with `start`, else `World()`."""
    return _started.get("world", World())


def start(cluster=None, log=print):
    """Joins (or forms) the cluster and sets Keras's `DataParallel`
    distribution over all its devices. Call before any JAX computation.

    Args:
        cluster: A `Cluster`, or None for `Cluster.from_env()`.
        log: Where progress lines go.

    Returns:
        The `World`.

    Raises:
        DistributedError: Not the JAX backend, bad cluster values, or a
            second start with other values in the same process.
    """
    import keras  # the backend decides what can run

    if keras.backend.backend() != "jax":
        raise DistributedError(
            "distribution: data_parallel needs the JAX backend (set "
            f"KERAS_BACKEND=jax; this process runs {keras.backend.backend()}); "
            "under TensorFlow, 'mirrored' trains on the GPUs of one machine"
        )
    cluster = Cluster.from_env() if cluster is None else cluster
    cluster.check()
    if "world" in _started:
        if _started["cluster"] != cluster:
            raise DistributedError(
                f"this process already joined {_started['cluster']}; JAX joins "
                "one cluster a process"
            )
        return _started["world"]
    _initialize(cluster, log)
    import jax  # imported by Keras's JAX backend already

    world = World(
        process_id=jax.process_index(),
        num_processes=jax.process_count(),
        devices=jax.device_count(),
        distributed=True,
    )
    keras.distribution.set_distribution(
        # kerazoo shards the data itself (see the module docstring).
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    _started.update(cluster=cluster, world=world)
    return world


@contextlib.contextmanager
def watching_peers(world=None):
    """Ends this process with a clear message when its job of several
    processes loses one: a JAX runtime error (in practice a collective whose
    peer is gone) inside the block prints which processes it can have been
    and how to resume, then exits with status 1 at once. Exiting normally
    would run `jax.distributed`'s shutdown barrier, which the dead peer can
    never reach, and abort with a C++ stack trace. One process: errors pass.
    """
    world = current() if world is None else world
    try:
        yield
    except Exception as error:
        if world.num_processes < 2:
            raise
        import jax  # the job runs on JAX

        if not isinstance(error, jax.errors.JaxRuntimeError):
            raise
        others = [i for i in range(world.num_processes) if i != world.process_id]
        who = (
            f"process {others[0]}"
            if len(others) == 1
            else f"one of processes {', '.join(map(str, others))}"
        )
        said = (str(error).strip().splitlines() or [type(error).__name__])[0]
        sys.stderr.write(
            f"kerazoo: error: process {world.process_id} of "
            f"{world.num_processes} stopped: an operation across the processes "
            f"failed ({said[:300]}). Another process of the job ({who}) most "
            "likely died or was stopped: its own log says why. Restart every "
            "process with --resume; the run continues from its last finished "
            "epoch.\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)


def _initialize(cluster, log):
    import jax  # imported by Keras's JAX backend already

    # CPU processes exchange gradients through gloo (no MPI needed); GPUs
    # and TPUs use their own collectives whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = cluster.timeout
    options = {
        "initialization_timeout": timeout + _JAX_GRACE,
        "heartbeat_timeout_seconds": timeout,
        "shutdown_timeout_seconds": timeout,
    }
    if not cluster.given:
        try:
            _join(**options)
        except ValueError as error:
            if "coordinator" not in str(error):
                raise
            log("data_parallel: no cluster given or detected; one process")
        return
    if cluster.num_processes == 1:
        return
    log(
        f"data_parallel: process {cluster.process_id} of {cluster.num_processes}, "
        f"waiting up to {timeout} s for the others at {cluster.coordinator}"
    )
    watchdog = threading.Timer(timeout, _not_joined, args=(cluster,))
    watchdog.daemon = True
    watchdog.start()
    try:
        _join(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            **options,
        )
    finally:
        watchdog.cancel()


def _join(**options):
    import jax  # imported by Keras's JAX backend already

    try:
        jax.distributed.initialize(**options)
    except RuntimeError as error:
        if "must be called before" not in str(error):
            raise
        raise DistributedError(
            "JAX computed before joining the cluster (validating a recipe "
            "builds its optimizers): call kerazoo.distributed.start() before "
            "load_recipe"
        ) from None


def _not_joined(cluster):
    """Ends a process whose cluster did not form in time (JAX's own deadline
    would abort it later, without naming anyone)."""
    others = [i for i in range(cluster.num_processes) if i != cluster.process_id]
    if cluster.process_id == 0:
        who = (
            f"process {others[0]}"
            if len(others) == 1
            else f"one or more of processes {', '.join(map(str, others))}"
        )
        what = f"{who} did not join the coordinator {cluster.coordinator}"
    else:
        what = (
            f"process {cluster.process_id} could not join: the coordinator "
            f"{cluster.coordinator} (process 0) did not answer, or another of "
            f"processes {', '.join(map(str, others))} did not join"
        )
    sys.stderr.write(
        f"kerazoo: error: {what} within {cluster.timeout} s. Start every process "
        "with the same --coordinator and --num-processes and its own "
        f"--process-id (or raise --distributed-timeout / "
        f"{ENVIRONMENT['timeout']}).\n"
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)
