// RUN: fastmamba opt %s -p 'set-target,insert-hadamard' | filecheck %s

// block=0 (the default): each layer gets the largest power of two dividing its
// input width, at most the target's largest block: 16 for a width of 16, 8 for
// 24.  The activation is rotated online (mamba_quant.hadamard, run by the LIN
// unit), the weight offline (rotate_columns).  The LM head is left alone.

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

// CHECK:      %w_in = mamba.weight "backbone.layers.0.mixer.in_proj.weight"
// CHECK-NEXT: %[[X:.*]] = mamba_quant.hadamard %x {block = 16 : i64} : tensor<2x16xf32> -> tensor<2x16xf32>
// CHECK-NEXT: %[[W:.*]] = mamba_quant.rotate_columns %w_in {block = 16 : i64} : tensor<76x16xf32> -> tensor<76x16xf32>
// CHECK-NEXT: mamba.linear %[[X]], %[[W]] : (tensor<2x16xf32>, tensor<76x16xf32>) -> tensor<2x76xf32>
// CHECK:      %[[Y:.*]] = mamba_quant.hadamard %y {block = 8 : i64} : tensor<2x24xf32> -> tensor<2x24xf32>
// CHECK-NEXT: %[[WO:.*]] = mamba_quant.rotate_columns %w_out {block = 8 : i64} : tensor<16x24xf32> -> tensor<16x24xf32>
// CHECK-NEXT: mamba.linear %[[Y]], %[[WO]]
// CHECK-NOT:  mamba_quant.hadamard
// CHECK:      %[[S:.*]] = mamba.slice %x
// CHECK-NEXT: mamba.lm_head %[[S]], %emb : (tensor<1x16xf32>, tensor<256x16xf32>) -> tensor<1x256xf32>
