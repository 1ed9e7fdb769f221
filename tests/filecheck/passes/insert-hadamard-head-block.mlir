// RUN: fastmamba opt %s -p 'set-target,insert-hadamard{head=true block=4}' | filecheck %s

// An explicit block (a power of two dividing every width) is used for every
// layer, and head=true rotates the LM head (its input and the tied embedding
// matrix) as well, for a W8A8 head.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>, %y: tensor<2x24xf32>) -> (tensor<2x76xf32>, tensor<2x16xf32>, tensor<1x256xf32>) {
    %w_in = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<76x16xf32>
    %0 = mamba.linear %x, %w_in : (tensor<2x16xf32>, tensor<76x16xf32>) -> tensor<2x76xf32>
    %w_out = mamba.weight "backbone.layers.0.mixer.out_proj.weight" : tensor<16x24xf32>
    %1 = mamba.linear %y, %w_out : (tensor<2x24xf32>, tensor<16x24xf32>) -> tensor<2x16xf32>
    %emb = mamba.weight "backbone.embeddings.weight" : tensor<256x16xf32>
    %2 = mamba.slice %x {axis = 0 : i64, start = 1 : i64, size = 1 : i64} : tensor<2x16xf32> -> tensor<1x16xf32>
    %3 = mamba.lm_head %2, %emb : (tensor<1x16xf32>, tensor<256x16xf32>) -> tensor<1x256xf32>
    func.return %0, %1, %3 : tensor<2x76xf32>, tensor<2x16xf32>, tensor<1x256xf32>
  }
}

// CHECK:      mamba_quant.hadamard %x {block = 4 : i64}
// CHECK-NEXT: mamba_quant.rotate_columns %w_in {block = 4 : i64}
// CHECK:      mamba_quant.hadamard %y {block = 4 : i64}
// CHECK-NEXT: mamba_quant.rotate_columns %w_out {block = 4 : i64}
// CHECK:      %[[S:.*]] = mamba.slice %x
// CHECK-NEXT: %[[H:.*]] = mamba_quant.hadamard %[[S]] {block = 4 : i64} : tensor<1x16xf32> -> tensor<1x16xf32>
// CHECK-NEXT: %[[E:.*]] = mamba_quant.rotate_columns %emb {block = 4 : i64} : tensor<256x16xf32> -> tensor<256x16xf32>
// CHECK-NEXT: mamba.lm_head %[[H]], %[[E]] : (tensor<1x16xf32>, tensor<256x16xf32>) -> tensor<1x256xf32>
