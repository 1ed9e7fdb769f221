hello, this is not IR
