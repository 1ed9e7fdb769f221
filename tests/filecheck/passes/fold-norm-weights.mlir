// RUN: fastmamba opt %s -p fold-norm-weights | filecheck %s

// A pre-norm read only by in_proj: its weight is folded into in_proj's columns
// and the norm keeps a weight of ones.  Cut from `fastmamba import` of a
// one-layer model (d_model 16, d_inner 32).

builtin.module {
  func.func @prefill(%tokens: tensor<2xi64>) -> tensor<2x76xf32> {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x16xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<2xi64>, tensor<256x16xf32>) -> tensor<2x16xf32>
    %l0_norm = mamba.weight "backbone.layers.0.norm.weight" : tensor<16xf32>
    %1 = mamba.rmsnorm %0, %l0_norm {eps = 1.000000e-05 : f64} : (tensor<2x16xf32>, tensor<16xf32>) -> tensor<2x16xf32>
    %l0_in_proj = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<76x16xf32>
    %2 = mamba.linear %1, %l0_in_proj : (tensor<2x16xf32>, tensor<76x16xf32>) -> tensor<2x76xf32>
    func.return %2 : tensor<2x76xf32>
  }
}

// CHECK:      %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x16xf32>
// CHECK-NEXT: %0 = mamba.embedding %tokens, %embeddings
// CHECK-NEXT: %l0_norm = mamba.weight "backbone.layers.0.norm.weight" : tensor<16xf32>
// CHECK-NEXT: %[[ONES:.*]] = mamba_quant.fill {value = 1.000000e+00 : f64} : tensor<16xf32>
// CHECK-NEXT: %[[N:.*]] = mamba.rmsnorm %0, %[[ONES]] {eps = 1.000000e-05 : f64}
// CHECK-NEXT: %l0_in_proj = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<76x16xf32>
// CHECK-NEXT: %[[W:.*]] = mamba_quant.scale_columns %l0_in_proj, %l0_norm : (tensor<76x16xf32>, tensor<16xf32>) -> tensor<76x16xf32>
// CHECK-NEXT: %[[Y:.*]] = mamba.linear %[[N]], %[[W]] : (tensor<2x16xf32>, tensor<76x16xf32>) -> tensor<2x76xf32>
// CHECK-NEXT: func.return %[[Y]] : tensor<2x76xf32>
