"""Keras session helpers that keep the caller's dtype policy.

`keras.utils.clear_session()` also resets the global dtype policy to float32.
A library call that clears the session in the middle of a mixed-precision run
(porting weights on first use, a tuner between trials) would then silently
build every later model in float32; these helpers put the policy back.
"""

import contextlib

import keras


def clear_session(free_memory=True):
    """`keras.utils.clear_session(free_memory)`, keeping the global dtype policy.

    `free_memory=False` skips the full garbage collection, which walks the
    whole heap (seconds in a process that has built many models): for loops
    of small models, where Python's own collector is enough."""
    policy = keras.config.dtype_policy()
    keras.utils.clear_session(free_memory=free_memory)
    keras.config.set_dtype_policy(policy)


@contextlib.contextmanager
def float32_policy():
    """Runs a block under the float32 policy (weights ported or checked in full
    precision, whatever the caller trains in), then restores the caller's."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
