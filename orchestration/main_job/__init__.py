"""The main job (`make pipeline`, ``ncf-course``): the whole course pipeline in one command.

- ``cli``: the command line and the run;
- ``stages``: the flow every backend runs (prepare, train, evaluate, recommend) and its types;
- ``processes`` / ``local_mode``: the two backends, plain processes and SageMaker local mode;
- ``backends``: which backend this machine gets;
- ``console``: one line a stage on the screen, each stage's output in its log file;
- ``report``: the results table, the sample recommendations and the files.
"""
