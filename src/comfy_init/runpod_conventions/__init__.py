"""What RunPod's own start script does in a pod, kept by ``/init``: SSH, JupyterLab, the
environment file for SSH shells, the start hooks, the serverless defaults."""
