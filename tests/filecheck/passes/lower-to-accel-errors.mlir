// RUN: not fastmamba opt %s -p lower-to-accel 2>&1 | filecheck %s --check-prefix=NOTARGET
// RUN: not fastmamba opt %s -p 'set-target,lower-to-accel{prefetch=0}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not fastmamba opt %S/approximate-nonlinear.mlir -p set-target,lower-to-accel 2>&1 | filecheck %s --check-prefix=UNFUSED

// No target on the module; an option out of range; IR whose element-wise ops
// were not fused into VEC passes (approximate-nonlinear.mlir's float softplus):
// the pass that must run first is named (compiler.pipeline.check_level).

builtin.module {
  func.func @prefill(%tokens: tensor<2xi64>) -> tensor<2x16xf32> {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<8x16xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<2xi64>, tensor<8x16xf32>) -> tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}

// NOTARGET:       fastmamba opt: error: lower-to-accel: the module has no target (accel.target): run set-target{target=NAME|FILE} before it
// NOTARGET-EMPTY:
// OPTION:         fastmamba opt: error: lower-to-accel: prefetch must be >= 1 and tile_kib >= 0
// OPTION-EMPTY:
// UNFUSED:        fastmamba opt: error: lower-to-accel: the IR holds mamba.softplus: run fuse-elementwise first
// UNFUSED-EMPTY:
