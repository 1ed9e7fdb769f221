// RUN: fastmamba opt %s -p fuse-elementwise | filecheck %s

// @gated: the scan output's dequantization, the gated norm (folded weight) and
// the quantization for out_proj are one pass: ops gate, rmsnorm.
// @two_b: add then mul each read a second tensor (the b operand); a VEC pass
// has one, so they stay two passes.

builtin.module {
  func.func @gated(%y: tensor<2x32xi32>, %z: tensor<2x32xf32>) -> tensor<2x32xi16> {
    %0 = mamba_quant.dequantize %y {exp = -28 : i64} : tensor<2x32xi32> -> tensor<2x32xf32>
    %ones = mamba_quant.fill {value = 1.000000e+00 : f64} : tensor<32xf32>
    %1 = mamba.gated_rmsnorm %0, %z, %ones {eps = 1.000000e-05 : f64, group_size = 32 : i64} : (tensor<2x32xf32>, tensor<2x32xf32>, tensor<32xf32>) -> tensor<2x32xf32>
    %2 = mamba_quant.quantize %1 {out_scale = 7093.97314 : f32} : tensor<2x32xf32> -> tensor<2x32xi16>
    func.return %2 : tensor<2x32xi16>
  }
  func.func @two_b(%u: tensor<2x16xf32>, %r: tensor<2x16xf32>, %s: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.add %u, %r : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
    %1 = mamba.mul %0, %s : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
    func.return %1 : tensor<2x16xf32>
  }
}

// CHECK:      builtin.module attributes {mamba_quant.fused = {converted = 5 : i64, fused = 2 : i64, passes = 3 : i64}}
// CHECK-LABEL: func.func @gated
// CHECK-NEXT: %0 = mamba_quant.vec %y, %z {ops = ["gate", "rmsnorm"], a_exp = -28 : i64, b_exp = 0 : i64, group = 32 : i64, eps = 1.000000e-05 : f64, out_scale = 7093.97314 : f32} : tensor<2x32xi32>, tensor<2x32xf32> -> tensor<2x32xi16>
// CHECK-NEXT: func.return %0 : tensor<2x32xi16>
// CHECK-LABEL: func.func @two_b
// CHECK-NEXT: %0 = mamba_quant.vec %u, %r {ops = ["add"],
// CHECK-NEXT: %1 = mamba_quant.vec %0, %s {ops = ["mul"],
// CHECK-NEXT: func.return %1
