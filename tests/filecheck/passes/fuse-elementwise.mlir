// RUN: fastmamba opt %s -p fuse-elementwise | filecheck %s

// A norm with a folded weight followed by its quantization is one VEC pass
// (rmsnorm, int16 out); the residual add is another.  The module counts the
// ops converted (3), the passes merged away (1) and the passes left (2).

builtin.module {
  func.func @prefill(%u: tensor<2x16xf32>, %r: tensor<2x16xf32>) -> (tensor<2x16xi16>, tensor<2x16xf32>) {
    %ones = mamba_quant.fill {value = 1.000000e+00 : f64} : tensor<16xf32>
    %0 = mamba.rmsnorm %u, %ones {eps = 1.000000e-05 : f64} : (tensor<2x16xf32>, tensor<16xf32>) -> tensor<2x16xf32>
    %1 = mamba_quant.quantize %0 {out_scale = 14821.7988 : f32} : tensor<2x16xf32> -> tensor<2x16xi16>
    %2 = mamba.add %u, %r : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
    func.return %1, %2 : tensor<2x16xi16>, tensor<2x16xf32>
  }
}

// CHECK:      builtin.module attributes {mamba_quant.fused = {converted = 3 : i64, fused = 1 : i64, passes = 2 : i64}}
// CHECK:      %0 = mamba_quant.vec %u {ops = ["rmsnorm"], a_exp = 0 : i64, b_exp = 0 : i64, group = 16 : i64, eps = 1.000000e-05 : f64, out_scale = 14821.7988 : f32} : tensor<2x16xf32> -> tensor<2x16xi16>
// CHECK-NEXT: %1 = mamba_quant.vec %u, %r {ops = ["add"], a_exp = 0 : i64, b_exp = 0 : i64, group = 1 : i64, eps = 0.000000e+00 : f64, out_scale = 1.000000e+00 : f32} : tensor<2x16xf32>, tensor<2x16xf32> -> tensor<2x16xf32>
// CHECK-NEXT: func.return %0, %1 : tensor<2x16xi16>, tensor<2x16xf32>
// CHECK-NOT:  mamba.rmsnorm
// CHECK-NOT:  mamba_quant.quantize
