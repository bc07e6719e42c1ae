"""The serving edge, from a client's request to a replica: model routes on a Gateway (or an
Ingress), KV-cache-aware inference pools and their objectives (priorities), and the body-based
router that turns the model named in the body into the header the routes match."""
