// RUN: not fastmamba opt %s -p set-target,calibrate 2>&1 | filecheck %s --check-prefix=NOTEXT
// RUN: not fastmamba opt %s -p 'set-target,calibrate{text="%inputs/no-such-file.txt"}' 2>&1 | filecheck %s --check-prefix=UNREADABLE
// RUN: not fastmamba opt %s -p 'set-target,calibrate{text="%inputs/calibration.txt" function="decode"}' 2>&1 \
// RUN:   | filecheck %s --check-prefix=FUNCTION

// Calibration needs a text, a readable one, and the function it names.

builtin.module {
  func.func @prefill(%tokens: tensor<4xi64>) -> tensor<4x256xf32> {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<256x256xf32>
    %0 = mamba.embedding %tokens, %embeddings : (tensor<4xi64>, tensor<256x256xf32>) -> tensor<4x256xf32>
    func.return %0 : tensor<4x256xf32>
  }
}

// NOTEXT:           fastmamba opt: error: calibrate: give the calibration text: calibrate{text="FILE"}
// NOTEXT-EMPTY:
// UNREADABLE:       fastmamba opt: error: calibrate: cannot read {{.*}}/no-such-file.txt: No such file or directory
// UNREADABLE-EMPTY:
// FUNCTION:         fastmamba opt: error: calibrate: the module has no function @decode
// FUNCTION-EMPTY:
