"""The vLLM servers: the three serving components (Deployment, Knative Service, LeaderWorkerSet)
and their shared base, the one vLLM pod they all run (flags, warm-up, weights from a cache volume
or object storage, API key), the model cache that fills the volume, Knative canary revisions and
the image pre-pull on every GPU node."""
