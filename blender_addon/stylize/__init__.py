"""The Stylize workflow in the scene: the job folder filled from it, the checks before a start, the session that
follows the running job (io/job.py), and the result brought back into the scene. Built on splats/, cameras/ and
worker/."""
