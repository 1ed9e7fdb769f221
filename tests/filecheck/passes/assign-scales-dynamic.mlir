// RUN: fastmamba opt %s -p 'set-target,assign-scales{activations="dynamic"}' | filecheck %s

// Dynamic activations: the LIN unit picks a scale per token at run time, so the
// input goes in as int16 at the calibrated range (32767 / 2.54 = 12900.39;
// in_scale its inverse 2.54 / 32767 = 7.7517e-05) to a qlinear_dynamic.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x8xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<8x16xf32>
    %0 = mamba.linear %x, %w {mamba_quant.range = {w = 1.0 : f64, x = 2.54 : f64, xr = 2.54 : f64}} : (tensor<2x16xf32>, tensor<8x16xf32>) -> tensor<2x8xf32>
    func.return %0 : tensor<2x8xf32>
  }
}

// CHECK:      %[[X:.*]] = mamba_quant.quantize %x {out_scale = 12900.3936 : f32} : tensor<2x16xf32> -> tensor<2x16xi16>
// CHECK-NEXT: %[[W:.*]], %[[S:.*]] = mamba_quant.quantize_weight %w {granularity = "channel"}
// CHECK-NEXT: mamba_quant.qlinear_dynamic %[[X]], %[[W]], %[[S]] {hlog2 = 0 : i64, in_scale = 7.7517014946930748e-05 : f64} : (tensor<2x16xi16>, tensor<8x16xi8>, tensor<8xf32>) -> tensor<2x8xf32>
