// RUN: fastmamba opt %s -p 'set-target,calibrate{text="%inputs/calibration.txt" windows=2}' | filecheck %s
// RUN: fastmamba opt %s -p 'set-target,calibrate{text="%inputs/calibration.txt" windows=2 method="percentile" percentile=50.0}' \
// RUN:   | filecheck %s --check-prefix=PCT

// The function is interpreted on the first 2 windows of 4 tokens of the text,
// with the weights of the bundled model (the default; its layer 0 in_proj cut
// out of `fastmamba import`), and the linear layer gets the largest magnitudes
// of its input before ("x") and after ("xr") the Hadamard rotation, and of its
// weight ("w").  With method="percentile" the activations' 50th percentile of
// magnitudes is recorded instead of the maximum.

builtin.module {
  func.func @prefill(%tokens: tensor<4xi64>) -> tensor<4x1168xf32> {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x256xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<4xi64>, tensor<256x256xf32>) -> tensor<4x256xf32>
    %l0_norm = mamba.weight "backbone.layers.0.norm.weight" : tensor<256xf32>
    %1 = mamba.rmsnorm %0, %l0_norm {eps = 1.000000e-05 : f64} : (tensor<4x256xf32>, tensor<256xf32>) -> tensor<4x256xf32>
    %2 = mamba_quant.hadamard %1 {block = 256 : i64} : tensor<4x256xf32> -> tensor<4x256xf32>
    %w = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<1168x256xf32>
    %3 = mamba_quant.rotate_columns %w {block = 256 : i64} : tensor<1168x256xf32> -> tensor<1168x256xf32>
    %4 = mamba.linear %2, %3 : (tensor<4x256xf32>, tensor<1168x256xf32>) -> tensor<4x1168xf32>
    func.return %4 : tensor<4x1168xf32>
  }
}

// CHECK: %4 = mamba.linear %2, %3 {mamba_quant.range = {w = 0.47291052341461182 : f64, x = 3.5600850582122803 : f64, xr = 3.2072184085845947 : f64}}
// PCT:   %4 = mamba.linear %2, %3 {mamba_quant.range = {w = 0.066196881234645844 : f64, x = 0.5813642144203186 : f64, xr = 0.59686991572380066 : f64}}
