// RUN: fastmamba opt %s -p fold-norm-weights | filecheck %s

// The gated norm's weight folds into out_proj; norm_f's folds into the tied
// LM head (the embedding matrix), through the row slice of the last token.
// The embedding lookup keeps reading the unscaled matrix.

builtin.module {
  func.func @prefill(%tokens: tensor<2xi64>, %y: tensor<2x32xf32>, %z: tensor<2x32xf32>) -> (tensor<2x16xf32>, tensor<1x256xf32>) {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x16xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<2xi64>, tensor<256x16xf32>) -> tensor<2x16xf32>
    %g = mamba.weight "backbone.layers.0.mixer.norm.weight" : tensor<32xf32>
    %1 = mamba.gated_rmsnorm %y, %z, %g {eps = 1.000000e-05 : f64, group_size = 32 : i64} : (tensor<2x32xf32>, tensor<2x32xf32>, tensor<32xf32>) -> tensor<2x32xf32>
    %w = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<16x32xf32>
    %2 = mamba.linear %1, %w : (tensor<2x32xf32>, tensor<16x32xf32>) -> tensor<2x16xf32>
    %norm_f = mamba.weight "backbone.norm_f.weight" : tensor<16xf32>
    %3 = mamba.rmsnorm %0, %norm_f {eps = 1.000000e-05 : f64} : (tensor<2x16xf32>, tensor<16xf32>) -> tensor<2x16xf32>
    %4 = mamba.slice %3 {axis = 0 : i64, start = 1 : i64, size = 1 : i64} : tensor<2x16xf32> -> tensor<1x16xf32>
    %5 = mamba.lm_head %4, %embeddings : (tensor<1x16xf32>, tensor<256x16xf32>) -> tensor<1x256xf32>
    func.return %2, %5 : tensor<2x16xf32>, tensor<1x256xf32>
  }
}

// CHECK:      %0 = mamba.embedding %tokens, %embeddings :
// CHECK:      %[[ONES32:.*]] = mamba_quant.fill {value = 1.000000e+00 : f64} : tensor<32xf32>
// CHECK-NEXT: %[[G:.*]] = mamba.gated_rmsnorm %y, %z, %[[ONES32]] {eps = 1.000000e-05 : f64, group_size = 32 : i64}
// CHECK:      %[[WO:.*]] = mamba_quant.scale_columns %w, %g : (tensor<16x32xf32>, tensor<32xf32>) -> tensor<16x32xf32>
// CHECK-NEXT: mamba.linear %[[G]], %[[WO]]
// CHECK:      %[[ONES16:.*]] = mamba_quant.fill {value = 1.000000e+00 : f64} : tensor<16xf32>
// CHECK-NEXT: %[[N:.*]] = mamba.rmsnorm %0, %[[ONES16]]
// CHECK-NEXT: %[[S:.*]] = mamba.slice %[[N]] {axis = 0 : i64, start = 1 : i64, size = 1 : i64}
// CHECK-NEXT: %[[WH:.*]] = mamba_quant.scale_columns %embeddings, %norm_f : (tensor<256x16xf32>, tensor<16xf32>) -> tensor<256x16xf32>
// CHECK-NEXT: mamba.lm_head %[[S]], %[[WH]] : (tensor<1x16xf32>, tensor<256x16xf32>) -> tensor<1x256xf32>
