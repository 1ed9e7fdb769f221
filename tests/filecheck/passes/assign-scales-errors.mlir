// RUN: not fastmamba opt %s -p 'set-target,assign-scales' 2>&1 | filecheck %s --check-prefix=NORANGE
// RUN: not fastmamba opt %s -p 'set-target,assign-scales{granularity="row"}' 2>&1 | filecheck %s --check-prefix=GRAN
// RUN: not fastmamba opt %S/assign-scales.mlir -p 'assign-scales' 2>&1 | filecheck %s --check-prefix=NOTARGET

// Scales need calibrated ranges (calibrate first), a known granularity and the
// module's target (set-target first; assign-scales.mlir has the ranges).

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x8xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
    %0 = mamba.linear %x, %w : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
    func.return %0 : tensor<2x8xf32>
  }
}

// NORANGE:        fastmamba opt: error: assign-scales: the IR has no calibrated ranges (mamba_quant.range): run calibrate first
// NORANGE-EMPTY:
// GRAN:           fastmamba opt: error: assign-scales: granularity must be {{.*}}'channel'{{.*}}'tensor', got 'row'
// GRAN-EMPTY:
// NOTARGET:       fastmamba opt: error: assign-scales: the module has no target (accel.target): run set-target{target=NAME|FILE} before it
// NOTARGET-EMPTY:
