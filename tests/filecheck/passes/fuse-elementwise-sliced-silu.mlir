// RUN: fastmamba opt %s -p fuse-elementwise | filecheck %s

// The conv output's SiLU, sliced into x, B and C, each slice quantized: the
// column-wise silu (with the dequantization of its input, a_exp = -13) is
// merged into each quantization, which reads its slice of the int16 conv
// output instead: 3 passes, 4 merged away.

builtin.module {
  func.func @prefill(%conv: tensor<2x40xi16>) -> (tensor<2x32xi16>, tensor<2x4xi16>, tensor<2x4xi16>) {
    %0 = mamba_quant.dequantize %conv {exp = -13 : i64} : tensor<2x40xi16> -> tensor<2x40xf32>
    %1 = mamba.silu %0 : tensor<2x40xf32>
    %2 = mamba.slice %1 {axis = 1 : i64, start = 0 : i64, size = 32 : i64} : tensor<2x40xf32> -> tensor<2x32xf32>
    %3 = mamba.slice %1 {axis = 1 : i64, start = 32 : i64, size = 4 : i64} : tensor<2x40xf32> -> tensor<2x4xf32>
    %4 = mamba.slice %1 {axis = 1 : i64, start = 36 : i64, size = 4 : i64} : tensor<2x40xf32> -> tensor<2x4xf32>
    %5 = mamba_quant.quantize %2 {out_scale = 8.192000e+03 : f32} : tensor<2x32xf32> -> tensor<2x32xi16>
    %6 = mamba_quant.quantize %3 {out_scale = 3.276800e+04 : f32} : tensor<2x4xf32> -> tensor<2x4xi16>
    %7 = mamba_quant.quantize %4 {out_scale = 3.276800e+04 : f32} : tensor<2x4xf32> -> tensor<2x4xi16>
    func.return %5, %6, %7 : tensor<2x32xi16>, tensor<2x4xi16>, tensor<2x4xi16>
  }
}

// CHECK:      builtin.module attributes {mamba_quant.fused = {converted = 5 : i64, fused = 4 : i64, passes = 3 : i64}}
// CHECK:      %0 = mamba.slice %conv {axis = 1 : i64, start = 0 : i64, size = 32 : i64} : tensor<2x40xi16> -> tensor<2x32xi16>
// CHECK-NEXT: %1 = mamba_quant.vec %0 {ops = ["silu"], a_exp = -13 : i64, b_exp = 0 : i64, group = 1 : i64, eps = 0.000000e+00 : f64, out_scale = 8.192000e+03 : f32} : tensor<2x32xi16> -> tensor<2x32xi16>
// CHECK-NEXT: %2 = mamba.slice %conv {axis = 1 : i64, start = 32 : i64, size = 4 : i64} : tensor<2x40xi16> -> tensor<2x4xi16>
// CHECK-NEXT: %3 = mamba_quant.vec %2 {ops = ["silu"], a_exp = -13 : i64, b_exp = 0 : i64, group = 1 : i64, eps = 0.000000e+00 : f64, out_scale = 3.276800e+04 : f32} : tensor<2x4xi16> -> tensor<2x4xi16>
// CHECK-NEXT: %4 = mamba.slice %conv {axis = 1 : i64, start = 36 : i64, size = 4 : i64} : tensor<2x40xi16> -> tensor<2x4xi16>
// CHECK-NEXT: %5 = mamba_quant.vec %4 {ops = ["silu"], a_exp = -13 : i64, b_exp = 0 : i64, group = 1 : i64, eps = 0.000000e+00 : f64, out_scale = 3.276800e+04 : f32} : tensor<2x4xi16> -> tensor<2x4xi16>
// CHECK-NEXT: func.return %1, %3, %5
