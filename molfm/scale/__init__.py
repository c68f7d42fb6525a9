"""Scale-out: batch functions any engine can run, inputs streamed in parts, and the engines
(this machine's processes, or Ray) that run them. See docs/scale.md."""
