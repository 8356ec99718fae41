"""The host side of the course: everything that runs outside the stage containers.

- ``main_job``: `make pipeline` / ``ncf-course``, the whole pipeline in one command;
- ``sagemaker_local``: every SageMaker SDK call (offline session, jobs, endpoints, Pipeline);
- ``infra``: local infrastructure (services, images, machine checks, clean-up, GPU monitor);
- ``lessons``: the helpers the lessons call (job logs, MLflow run tables, spot, tuning);
- ``names``: names, ports and keys; ``probes``: one helper per question asked of the machine.
"""
