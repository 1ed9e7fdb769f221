"""Design-space exploration (`fastmamba explore`): target parameters swept on Ray Tune, cycles and resources.

Place in the flow: above the compiler, the simulator and the resource model, beside the command line.
space.py reads the SPACE.toml (checked before Ray starts), trial.py is one point's compile and simulation,
sweep.py runs the trials on Ray Tune and writes the results (resuming a folder's finished trials), plots.py
draws the Pareto fronts and the per-unit resources, shapes.py holds the paper's model shapes (random weights made
on demand) that timing-only compiles use.  docs/EXPLORE.md is the user's guide.
"""
