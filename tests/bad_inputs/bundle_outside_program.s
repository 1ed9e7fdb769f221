ctl.halt
