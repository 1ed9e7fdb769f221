"""compiler: frontend, dialects, reference models, pipeline driver, command line.

Dependency order inside the package: configs and reference models at the
bottom, dialects and frontend above them, the pipeline driver and the command
line (`compiler.cli`) on top.  No dialect or frontend module imports the
driver or the command line.
"""
