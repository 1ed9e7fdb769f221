// RUN: fastmamba opt %s -p 'set-target,assign-scales' | filecheck %s
// RUN: fastmamba opt %s -p 'set-target,assign-scales{granularity="tensor"}' | filecheck %s --check-prefix=TENSOR

// W8A8 from the calibrated range: the input's largest magnitude 2.54 gives the
// static activation scale 2.54 / 127 = 0.02, so the input is quantized to int8
// with out_scale 1 / 0.02 = 50; the weight is quantized per output channel
// (or per tensor) by mamba_quant.quantize_weight, evaluated offline.  With no
// rotation and a binary32 output the requantization is the identity (qmul 1,
// qshift 0).

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x8xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
    %0 = mamba.linear %x, %w {mamba_quant.range = {w = 1.0 : f64, x = 2.54 : f64, xr = 2.54 : f64}} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
    func.return %0 : tensor<2x8xf32>
  }
}

// CHECK:      %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
// CHECK-NEXT: %[[X:.*]] = mamba_quant.quantize %x {out_scale = 5.000000e+01 : f32} : tensor<2x16xf32> -> tensor<2x16xi8>
// CHECK-NEXT: %[[W:.*]], %[[S:.*]] = mamba_quant.quantize_weight %w {granularity = "channel"} : tensor<8x16xf32> -> tensor<8x16xi8>, tensor<8xf32>
// CHECK-NEXT: %[[Y:.*]] = mamba_quant.qlinear %[[X]], %[[W]], %[[S]] {hlog2 = 0 : i64, qmul = 1 : i64, qshift = 0 : i64, act_scale = 2.000000e-02 : f64} : (tensor<2x16xi8>, tensor<8x16xi8>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: func.return %[[Y]] : tensor<2x8xf32>
// CHECK-NOT:  mamba.linear

// TENSOR:     mamba_quant.quantize %x {out_scale = 5.000000e+01 : f32}
// TENSOR:     mamba_quant.quantize_weight %w {granularity = "tensor"}
// TENSOR:     mamba_quant.qlinear {{.*}} {hlog2 = 0 : i64, qmul = 1 : i64, qshift = 0 : i64, act_scale = 2.000000e-02 : f64}
