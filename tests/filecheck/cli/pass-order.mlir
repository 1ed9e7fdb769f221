// RUN: not fastmamba opt %s -p set-target,plan-memory 2>&1 | filecheck %s --check-prefix=PLAN
// RUN: not fastmamba opt %s -p set-target,schedule-vliw 2>&1 | filecheck %s --check-prefix=SCHEDULE
// RUN: not fastmamba opt %S/../passes/insert-hadamard.mlir -p set-target,insert-hadamard,lower-to-accel 2>&1 \
// RUN:   | filecheck %s --check-prefix=HADAMARD
// RUN: not fastmamba opt %S/../passes/lower-to-accel.mlir -p set-target,lower-to-accel,schedule-vliw 2>&1 \
// RUN:   | filecheck %s --check-prefix=UNPLANNED
// RUN: fastmamba opt %S/../passes/lower-to-accel.mlir -p set-target,lower-to-accel,plan-memory -o %t.planned.mlir
// RUN: not fastmamba translate %t.planned.mlir -o %t.fmb 2>&1 | filecheck %s --check-prefix=UNSCHEDULED
// RUN: not fastmamba translate %s -o %t.fmb 2>&1 | filecheck %s --check-prefix=MAMBA
// RUN: fastmamba opt %t.planned.mlir -p schedule-vliw -o %t.scheduled.mlir
// RUN: not fastmamba translate %t.scheduled.mlir -o %t.fmb 2>&1 | filecheck %s --check-prefix=UNCALIBRATED
// RUN: not test -e %t.fmb

// A pass run on IR of the wrong level (compiler.pipeline: NEEDS lists the
// levels each pass needs, LEVELS how each is recognized) is one line naming
// the first pass of the compile pipeline that must run before it: the memory
// planner and the scheduler need lowered programs (plan-memory used to exit 0
// leaving such IR unchanged), the lowering needs quantized and fused IR, the
// scheduler planned memory, and `translate` scheduled programs.  A binary
// needs the calibration record too (the metadata's plan is built from it).
// Nothing is written on a failure.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}

// PLAN:          fastmamba opt: error: plan-memory: the IR has no accel.program: run lower-to-accel first
// PLAN-EMPTY:
// SCHEDULE:      fastmamba opt: error: schedule-vliw: the IR has no accel.program: run lower-to-accel first
// SCHEDULE-EMPTY:
// HADAMARD:      fastmamba opt: error: lower-to-accel: the IR holds mamba_quant.hadamard: run assign-scales first
// HADAMARD-EMPTY:
// UNPLANNED:     fastmamba opt: error: schedule-vliw: the IR holds accel.program @prefill, its memory not planned: run plan-memory first
// UNPLANNED-EMPTY:
// UNSCHEDULED:   fastmamba translate: error: translate: the IR holds accel.program @prefill, not scheduled: run schedule-vliw first
// UNSCHEDULED-EMPTY:
// MAMBA:         fastmamba translate: error: translate: the IR has no accel.program: run lower-to-accel first
// MAMBA-EMPTY:
// UNCALIBRATED:  fastmamba translate: error: the module has no calibration record (mamba_quant.calibration): run calibrate first
// UNCALIBRATED-EMPTY:
