"""use_backend is context-local: per thread and per asyncio task; interleaved blocks never leak."""
import asyncio
import threading

import torch

import lstmkit
from lstmkit.kernels import dispatch


def test_two_threads_interleaved_blocks_see_only_their_own_backend():
    default = dispatch.get_backend()
    a_in, b_in, a_out, b_checked = (threading.Event() for _ in range(4))
    seen, errors = {}, []
    layer = lstmkit.LSTM(3, 4, preset="V", batch_first=True)        # a variant: native cannot run it
    x = torch.randn(2, 5, 3)

    def thread_a():
        with lstmkit.use_backend("native"):
            a_in.set()
            b_in.wait(10)
            seen["a inside"] = dispatch.get_backend()
        a_out.set()
        b_checked.wait(10)
        seen["a after"] = dispatch.get_backend()

    def thread_b():
        a_in.wait(10)
        seen["b while a forces native"] = dispatch.get_backend()
        try:
            layer(x)                                   # would raise if A's "native" leaked here
        except Exception as e:                         # noqa: BLE001 - reported below
            errors.append(e)
        with lstmkit.use_backend("reference"):
            b_in.set()
            a_out.wait(10)                             # A leaves its block while B is inside its own
            seen["b inside after a left"] = dispatch.get_backend()
        seen["b after"] = dispatch.get_backend()
        b_checked.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert seen == {"a inside": "native", "b while a forces native": default,
                    "b inside after a left": "reference", "b after": default, "a after": default}
    assert dispatch.get_backend() == default


def test_asyncio_tasks_each_keep_their_own_backend():
    async def task(name, other_entered, entered):
        with lstmkit.use_backend(name):
            entered.set()
            await other_entered.wait()
            await asyncio.sleep(0)
            return dispatch.get_backend()

    async def main():
        e1, e2 = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(task("reference", e2, e1), task("fused", e1, e2))

    assert asyncio.run(main()) == ["reference", "fused"]


def test_use_backend_overrides_set_backend_and_restores():
    old = dispatch._state["backend"]
    try:
        dispatch.set_backend("reference")
        with lstmkit.use_backend("native"):
            assert dispatch.get_backend() == "native"
        assert dispatch.get_backend() == "reference"
    finally:
        dispatch.set_backend(old)
