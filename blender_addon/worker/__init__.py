"""The worker: which Python runs the engine, its self-check, child processes read by threads, and the
long-lived render worker's protocol. Independent of splats/ and cameras/."""
