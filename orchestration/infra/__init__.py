"""Local infrastructure: the S3 store and MLflow server, images, machine checks, clean-up."""
