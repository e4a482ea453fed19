"""The Stylize workflow: job folders, the sos-stylize process, the session that follows it, and the result
brought back into the scene. Built on splats/, cameras/ and worker/."""
