// RUN: not fastmamba opt %s -p 'set-target,insert-hadamard{block=3}' 2>&1 | filecheck %s --check-prefix=POW2
// RUN: not fastmamba opt %s -p 'set-target,insert-hadamard{block=16}' 2>&1 | filecheck %s --check-prefix=DIVIDE
// RUN: not fastmamba opt %s -p 'set-target,insert-hadamard{block=x}' 2>&1 | filecheck %s --check-prefix=TYPE

// A block that is not a power of two, or does not divide a layer's width, is
// the user's mistake: one line naming it, no IR printed.

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

// POW2:       fastmamba opt: error: Hadamard block must be a power of two, got 3
// POW2-EMPTY:
// DIVIDE:     fastmamba opt: error: Hadamard block 16 does not divide the dimension 24
// DIVIDE-EMPTY:
// TYPE:       fastmamba opt: error: bad pass pipeline 'set-target,insert-hadamard{block=x}': Incompatible types: given ('x',), expected <class 'int'>
// TYPE-EMPTY:
