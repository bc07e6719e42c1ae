"""Developer commands, none of them part of ``pulumi up``:

python -m stacks.tools.render dev out/            # every object and Helm release of a stack, offline
python -m stacks.tools.diff main                  # what a change does to every stack's objects
python -m stacks.tools.charts pull-commands DIR   # the `helm pull` of every pinned chart
python -m stacks.tools.config_reference           # the README's config reference
python -m stacks.tools.cold_start_table           # the README's cold-start table
"""
