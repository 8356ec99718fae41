"""The main job (`make pipeline`, ``ncf-course``): the whole course pipeline in one command.

- ``cli``: the command line and the run;
- ``stages``: the flow every backend runs (prepare, train, evaluate, recommend) and its types;
- ``processes`` / ``local_mode``: the two backends, plain processes and SageMaker local mode;
- ``backends``: which backend this machine gets;
- ``report``: the results table and files.
"""
