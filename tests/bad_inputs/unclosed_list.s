.data addr=0 dtype=i8 values=[1, 2,
3
