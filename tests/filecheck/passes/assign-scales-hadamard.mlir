// RUN: fastmamba opt %s -p 'set-target,assign-scales' | filecheck %s

// A rotated layer: the LIN unit rotates the input itself, so the input goes in
// as int16 before the rotation (32767 / 2.54 = 12900.39) and the unit
// requantizes the rotated sums (divided by 2^hlog2 = 16, the block) to the int8
// scale of the rotated range, 1.27 / 127 = 0.01.  The multiplier:
// 2^hlog2 / sqrt(16) / (12900.39 * 0.01) = 0.0019379 = qmul / 2^qshift = 65026 / 2^25.
// The rotation op is folded into the qlinear; the weight keeps its rotate_columns.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x8xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
    %h = mamba_quant.hadamard %x {block = 16 : i64} : tensor<2x16xf32> -> tensor<2x16xf32>
    %r = mamba_quant.rotate_columns %w {block = 16 : i64} : tensor<8x16xf32> -> tensor<8x16xf32>
    %0 = mamba.linear %h, %r {mamba_quant.range = {w = 1.0 : f64, x = 2.54 : f64, xr = 1.27 : f64}} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
    func.return %0 : tensor<2x8xf32>
  }
}

// CHECK:      %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
// CHECK-NEXT: %r = mamba_quant.rotate_columns %w {block = 16 : i64}
// CHECK-NEXT: %[[X:.*]] = mamba_quant.quantize %x {out_scale = 12900.3936 : f32} : tensor<2x16xf32> -> tensor<2x16xi16>
// CHECK-NEXT: %[[W:.*]], %[[S:.*]] = mamba_quant.quantize_weight %r {granularity = "channel"}
// CHECK-NEXT: mamba_quant.qlinear %[[X]], %[[W]], %[[S]] {hlog2 = 4 : i64, qmul = 65026 : i64, qshift = 25 : i64, act_scale = 0.0099999977196804785 : f64} : (tensor<2x16xi16>, tensor<8x16xi8>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NOT:  mamba_quant.hadamard
