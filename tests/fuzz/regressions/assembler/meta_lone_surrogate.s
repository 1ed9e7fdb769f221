.meta "\ud800"
