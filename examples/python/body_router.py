"""BodyRouter: one URL for every model; the Gateway routes by the JSON body's "model"."""

import pulumi

from llmstack_k8s import BodyRouter, BodyRouterProvider

# Beside an existing Istio Gateway (one router per Gateway, in its namespace). The models' HTTPRoutes
# (ModelRoute) match the X-Gateway-Model-Name header the router sets from the body.
router = BodyRouter("body-based-router", {
    "namespace": "gateway",
    "gateway_name": "inference-gateway",
    "provider": BodyRouterProvider.ISTIO,
})
pulumi.export("router", router.service_host)
