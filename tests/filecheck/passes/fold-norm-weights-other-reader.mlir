// RUN: fastmamba opt %s -p fold-norm-weights | filecheck %s

// A norm whose output is also read by an add (not a linear layer) keeps its
// weight, and no linear weight is scaled: folding would change the add.

builtin.module {
  func.func @prefill(%tokens: tensor<2xi64>) -> tensor<2x16xf32> {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x16xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<2xi64>, tensor<256x16xf32>) -> tensor<2x16xf32>
    %l0_norm = mamba.weight "backbone.layers.0.norm.weight" : tensor<16xf32>
    %1 = mamba.rmsnorm %0, %l0_norm {eps = 1.000000e-05 : f64} : (tensor<2x16xf32>, tensor<16xf32>) -> tensor<2x16xf32>
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<16x16xf32>
    %2 = mamba.linear %1, %w : (tensor<2x16xf32>, tensor<16x16xf32>) -> tensor<2x16xf32>
    %3 = mamba.add %1, %2 : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
    func.return %3 : tensor<2x16xf32>
  }
}

// CHECK-NOT:  mamba_quant.fill
// CHECK-NOT:  mamba_quant.scale_columns
// CHECK:      %1 = mamba.rmsnorm %0, %l0_norm {eps = 1.000000e-05 : f64}
// CHECK:      %2 = mamba.linear %1, %w
// CHECK-NEXT: %3 = mamba.add %1, %2
// CHECK-NOT:  mamba_quant.fill
// CHECK-NOT:  mamba_quant.scale_columns
