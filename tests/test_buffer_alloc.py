"""On-chip buffer allocation: live tensors never overlap, offsets aligned, space reused, a clear error."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmamba.compiler.backend.buffer_alloc import BufferAllocationError, BufferRequest, allocate
from fastmamba.isa.target import load_target

VC709 = load_target("vc709")


@st.composite
def requests(draw):
    out = []
    for i in range(draw(st.integers(1, 25))):
        first = draw(st.integers(0, 30))
        out.append(BufferRequest(f"t{i}", draw(st.integers(0, 5000)), first, first + draw(st.integers(0, 10)),
                                 align=draw(st.sampled_from((1, 2, 4, 128))), slots=draw(st.integers(1, 2))))
    return out


@settings(max_examples=200, deadline=None)
@given(reqs=requests(), align=st.sampled_from((1, 16, 64)))
def test_live_tensors_never_overlap_and_offsets_are_aligned(reqs, align):
    target = dataclasses.replace(VC709, name="small", buffer_bytes=1 << 20)
    plan = allocate(reqs, target, align=align)
    spans = {}
    for r in reqs:
        offs = plan.offsets[r.name]
        assert len(offs) == r.slots
        for o in offs:
            assert o % max(align, r.align) == 0
            assert o + r.nbytes <= target.buffer_bytes
        assert all(b - a >= r.nbytes for a, b in zip(offs, offs[1:]))  # the slots do not overlap each other
        spans[r.name] = (offs[0], offs[-1] + r.nbytes)
    for a in reqs:
        for b in reqs:
            if a.name < b.name and a.first <= b.last and b.first <= a.last:
                (a0, a1), (b0, b1) = spans[a.name], spans[b.name]
                assert a1 <= b0 or b1 <= a0 or a0 == a1 or b0 == b1, (a, b, spans[a.name], spans[b.name])


def test_space_is_reused_after_death():
    reqs = [BufferRequest("a", 1000, 0, 2), BufferRequest("b", 1000, 3, 5), BufferRequest("c", 1000, 1, 4)]
    plan = allocate(reqs, VC709)
    assert plan.offsets["a"] == plan.offsets["b"] == (0,)
    assert plan.offsets["c"] == (1024,)
    assert plan.peak_bytes == 2048


def test_double_buffering_gives_two_aligned_slots():
    plan = allocate([BufferRequest("w", 100, 0, 9, slots=2), BufferRequest("x", 10, 0, 9)], VC709, align=64)
    assert plan.slot_bytes["w"] == 128 and plan.offsets["w"] == (0, 128)
    assert plan.offsets["x"] == (256,)


def test_too_big_names_the_tensor_and_the_sizes():
    target = dataclasses.replace(VC709, name="small", buffer_bytes=4096)
    reqs = [BufferRequest("acts", 3000, 0, 5), BufferRequest("weights", 2000, 2, 3)]
    with pytest.raises(BufferAllocationError, match=r"tensor weights \(2000 bytes .*4096 bytes: 3008 bytes of 1"):
        allocate(reqs, target)
    allocate([BufferRequest("acts", 3000, 0, 1), BufferRequest("weights", 2000, 2, 3)], target)  # disjoint lives fit
