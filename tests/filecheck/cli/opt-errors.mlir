// RUN: not fastmamba opt %s -p 'cse,,dce' 2>&1 | filecheck %s --check-prefix=EMPTYPASS
// RUN: not fastmamba opt %s -p 'cse{' 2>&1 | filecheck %s --check-prefix=OPENBRACE
// RUN: not fastmamba opt %s -p 'cse dce' 2>&1 | filecheck %s --check-prefix=NOCOMMA
// RUN: not fastmamba opt %s -p 'no-such-pass' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not fastmamba opt %s -p 'dce' --print-ir-after=cse 2>&1 | filecheck %s --check-prefix=PRINTAFTER
// RUN: not fastmamba opt %S/no-such-file.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not fastmamba opt %S/../Inputs/calibration.txt 2>&1 | filecheck %s --check-prefix=GARBAGE

// Mistakes in the command line or the input file are one line each (exit
// status 1, which `not` checks), never a traceback.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}

// EMPTYPASS:        fastmamba opt: error: bad pass pipeline 'cse,,dce': expected pass name here (at character 5)
// EMPTYPASS-EMPTY:
// OPENBRACE:        fastmamba opt: error: bad pass pipeline 'cse{': expected argument name here (at character 5)
// OPENBRACE-EMPTY:
// NOCOMMA:          fastmamba opt: error: bad pass pipeline 'cse dce': expected a comma or pass arguments here (at character 4)
// NOCOMMA-EMPTY:
// UNKNOWN:          fastmamba opt: error: bad pass pipeline 'no-such-pass': Unrecognized passes: ['no-such-pass'] (available: {{.*}}fold-norm-weights{{.*}})
// UNKNOWN-EMPTY:
// PRINTAFTER:       fastmamba opt: error: --print-ir-after names a pass not in the pipeline: cse
// PRINTAFTER-EMPTY:
// MISSING:          fastmamba opt: error: cannot read {{.*}}no-such-file.mlir: No such file or directory
// MISSING-EMPTY:
// GARBAGE:          fastmamba opt: error: cannot parse {{.*}}calibration.txt:1:1: Operation First is not registered
// GARBAGE-EMPTY:
