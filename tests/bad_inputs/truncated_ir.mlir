builtin.module {
  %0 = "test.op"(
