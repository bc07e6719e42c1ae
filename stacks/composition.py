"""Compose the components into a stack from a validated StackConfig."""

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from llmstack_k8s.gpu_autoscaling import GpuAutoscaling
from llmstack_k8s.gpu_node_pool import GpuNodePool
from llmstack_k8s.image_prepull import ImagePrePull
from llmstack_k8s.team import Team
from llmstack_k8s.versions import VLLM_IMAGE
from llmstack_k8s.knative_serving import DATA_PLANE_NAMESPACES as KNATIVE_INSTALLED_NAMESPACES, KnativeServing
from llmstack_k8s.knative_vllm_service import ALL_POD_FEATURES as KNATIVE_INSTALLED_FEATURES, KnativeVllmService
from llmstack_k8s.model_cache import ModelCache
from llmstack_k8s.inference_pool import InferencePool
from llmstack_k8s.body_router import BodyRouter
from llmstack_k8s.model_route import ModelRoute
from llmstack_k8s.package import selector_labels
from llmstack_k8s.observability import Observability
from llmstack_k8s.package import MANAGED_BY
from llmstack_k8s.vllm_service import VllmService
from llmstack_k8s.multi_node import MultiNodeVllmService
from llmstack_k8s.multi_node_controller import LeaderWorkerSetController
from llmstack_k8s.wiring import scaled_workload

from .config import ModelConfig, StackConfig
from .teams import gpu_resource as team_gpu_resource
from .gateway import is_exposed, knative_request_timeout, kv_cache_aware, prioritized_names, request_budget
from .gpu_pool import fit_weights
from .multi_node import is_multi_node, multi_node_args
from .object_storage import model_object_storage_args


def engine_args(m: ModelConfig, cache=None) -> dict:
    """The typed vLLM engine args of a model (the pod builder renders them); its LoRA adapters
    are read from ``cache`` (the ModelCache that downloads them)."""
    engine = {
        "served_model_name": m.served_name,
        "tensor_parallel_size": m.tensor_parallel_size,
        "pipeline_parallel_size": m.pipeline_parallel_size,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "dtype": m.dtype,
        "enable_prefix_caching": m.enable_prefix_caching,
        "extra_args": list(m.extra_args),
    }
    for key in ("max_model_len", "quantization", "max_num_seqs"):
        if getattr(m, key) is not None:
            engine[key] = getattr(m, key)
    if m.lora_adapters and cache is not None:  # lora: each adapter's directory from the cache's outputs
        engine["lora_adapters"] = [
            {"name": a.name, "path": cache.adapter_paths.apply(lambda ps, i=i: ps[i]), "rank": a.rank}
            for i, a in enumerate(m.lora_adapters)
        ]
        if m.max_loras is not None:
            engine["max_loras"] = m.max_loras
    return engine


def knative_route_args(cfg: StackConfig, m: ModelConfig, ns, kserver) -> dict:
    """ModelRoute args of an exposed Knative model: one backend, Knative's cluster-local ingress, which
    picks the Knative Service by Host (a Knative canary is split there)."""
    gw, local = cfg.gateway, cfg.knative.effective_local_gateway
    return {
        "namespace": ns,
        "service_name": kserver.service_name,
        "served_model_names": [m.served_name, *(a.name for a in m.lora_adapters)],
        "kind": gw.kind,
        "request_timeout_seconds": request_budget(gw, m),
        "knative": {"host": kserver.url.apply(lambda u: u.split("://", 1)[1]), "local_gateway_name": local.name,
                    "local_gateway_namespace": local.namespace, "local_gateway_port": local.port,
                    "cold_start_seconds": m.cold_start_budget.total_seconds},
        **edge_args(gw),
    }


def edge_args(gw) -> dict:
    """ModelRoute args every route of the stack shares: the host, the Gateway or the Ingress settings."""
    ing = gw.ingress
    return {
        **({"hostnames": [gw.hostname]} if gw.hostname else {}),
        **({"gateway": {"name": gw.gateway_ref.name, "namespace": gw.gateway_ref.namespace,
                        **({"section_name": gw.gateway_ref.section_name} if gw.gateway_ref.section_name else {})}}
           if gw.gateway_ref else {}),
        **({"ingress": {k: v for k, v in {
            "class_name": ing.class_name, "tls_secret_name": ing.tls_secret_name,
            "cluster_issuer": ing.cluster_issuer, "max_body_size": ing.max_body_size}.items() if v is not None}}
           if ing else {}),
    }


def knative_canary_args(m: ModelConfig, cache) -> dict:
    """The canary of a Knative model (KnativeVllmService's ``canary``): its engine args and image, and
    its weights' directory in the model's cache when they are another revision (the last download)."""
    cv = m.canary_variant
    return {
        "weight": m.canary.weight,
        "engine": engine_args(cv, cache),
        **({"image": cv.image} if cv.image else {}),
        **({"model_path": cache.adapter_paths.apply(lambda ps: ps[-1])} if cv.revision != m.revision else {}),
    }


def source_args(cfg: StackConfig, m: ModelConfig, cache) -> dict:
    """Where a serving component reads the weights: the ModelCache's volume, or (``cache`` None) the
    bucket the model's URL names, streamed by every replica."""
    if cache is None:
        return {"object_storage": model_object_storage_args(cfg, m)}
    return {"model_path": cache.model_path, "cache_claim_name": cache.claim_name}


def weights_arg(m: ModelConfig) -> dict:
    """The serving component's ``weights_gib``: the size the stack's fit check used, so the
    component's own fit check measures the same model."""
    weights = fit_weights(m)
    return {"weights_gib": weights[0]} if weights else {}


def build(cfg: StackConfig) -> dict:
    """Register every resource of the stack; returns the stack outputs."""
    # The stack file's kubernetes:* / llmstack:kubernetes keys (context, kubeconfig, ...): the
    # default provider's config would not reach this explicit provider.
    provider = k8s.Provider("k8s", **cfg.kubernetes.provider_args(), enable_server_side_apply=True)
    on_cluster = pulumi.ResourceOptions(provider=provider)

    if cfg.existing_namespace:
        # Read, never created or deleted: a preview fails here if it does not exist.
        namespace = k8s.core.v1.Namespace.get("namespace", cfg.namespace, opts=on_cluster)
        ns = pulumi.Output.from_input(cfg.namespace)
    else:
        namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": cfg.namespace,
                # Every pod the stack runs meets the restricted Pod Security Standard.
                "labels": {**MANAGED_BY, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=on_cluster,
        )
        ns = namespace.metadata["name"]
    api_key = random.RandomPassword("api-key", length=48, special=False)
    in_ns = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])

    # --- gpu pool: device plugin / GPU operator, sharing, taints, classes, Karpenter; the
    # scheduling contract every serving component takes (created before the models) ---
    charts = cfg.charts.component_args()  # where every chart comes from (default: the pins' repositories)
    gpu_pool = GpuNodePool("gpu", {**cfg.gpu_pool.args(cfg.namespace), **charts}, opts=on_cluster)
    if cfg.image_pre_pull.enabled:  # cold start: every model's image already on each GPU node
        ImagePrePull(
            "image-prepull",
            {"namespace": ns, "images": sorted({m.image or VLLM_IMAGE for m in cfg.models}), "scheduling": gpu_pool.contract},
            opts=in_ns,
        )
    # --- end gpu pool ---

    # --- knative: Knative Serving for models with serving: knative (installed, or the cluster's) ---
    knative_models = [m for m in cfg.models if m.serving == "knative"]
    knative_install = None
    knative_features = list(cfg.knative.features)
    knative_namespaces = list(cfg.knative.namespaces)
    if knative_models and cfg.knative.install:
        knative_install = KnativeServing("knative", {**charts}, opts=on_cluster)
        knative_features = sorted(KNATIVE_INSTALLED_FEATURES)
        # The operator runs Kourier beside the activator; namespaces named in the stack file are added.
        explicit = list(cfg.knative.namespaces) if "namespaces" in cfg.knative.model_fields_set else []
        knative_namespaces = sorted(set(KNATIVE_INSTALLED_NAMESPACES) | set(explicit))
    # --- end knative ---

    # --- teams: each team's namespace, quota, limits, API key and boundary; its models go there ---
    stack_ns, stack_namespace, stack_key = ns, namespace, api_key.result
    placement: dict = {}
    team_outputs: dict = {}
    for t in cfg.teams:
        team = Team(
            t.name,
            {"namespace": t.effective_namespace, "quota": t.quota.args(), "gpu_resource_name": team_gpu_resource(cfg)},
            opts=on_cluster,
        )
        for name in t.models:
            placement[name] = (team.namespace, team, team.api_key, t)
        team_outputs[t.name] = {"namespace": team.namespace, "apiKey": team.api_key}
    # --- end teams ---

    # --- multi-node: the LeaderWorkerSet controller, when a model spans nodes ---
    lws_controller = None
    if cfg.leader_worker_set.install and any(is_multi_node(cfg, m) for m in cfg.models):
        lws_controller = LeaderWorkerSetController("lws", {"namespace": cfg.leader_worker_set.namespace, **charts}, opts=on_cluster)
    # --- end multi-node ---
    models = {}
    knative_canaries: list = []  # canary revisions of Knative models (the PodMonitor labels them)
    caches: dict = {}  # every download Job of each model (its own, its canary's): the alerts watch each
    scaled: list = []  # autoscaling
    scaled_servers: list = []  # autoscaling
    for m in cfg.models:
        # teams: a team's model goes to the team's namespace with the team's key (restored after the loop)
        ns, namespace, model_key, team_cfg = placement.get(m.name, (stack_ns, stack_namespace, stack_key, None))
        cache_args = {} if m.is_object_storage else {
            "namespace": ns,
            "model": m.model,
            "revision": m.revision,
            "size": m.cache.size,
            "access_mode": m.cache.access_mode or cfg.cache.access_mode,
            "storage_class_name": m.cache.storage_class or cfg.cache.storage_class,
            "backoff_limit": cfg.cache.download_retries,
            "active_deadline_seconds": cfg.cache.download_deadline_seconds,
            **({"hf_token": pulumi.Output.secret(cfg.huggingface_token)} if m.gated or any(a.gated for a in m.lora_adapters) else {}),
            **({"adapters": [{"model": a.model, "revision": a.revision} for a in m.lora_adapters]} if m.lora_adapters else {}),
        }
        knative_canary = m.serving == "knative" and m.canary_variant is not None
        if knative_canary and m.canary_variant.revision != m.revision:
            # A Knative canary's other weights go into the model's own volume beside its revision (one
            # directory each): its revision then equals what the promoted model renders (knative_canary).
            cache_args["adapters"] = [*cache_args.get("adapters", []), {"model": m.model, "revision": m.canary_variant.revision}]
        # object storage: no volume and no download; each replica streams the weights itself
        cache = None if m.is_object_storage else ModelCache(m.name, cache_args, opts=in_ns)
        caches[m.name] = [cache] if cache else []
        # --- knative: scale-to-zero models run the same vLLM pod as a Knative Service ---
        if m.serving == "knative":
            k = m.knative_scaling
            kserver = KnativeVllmService(
                m.name,
                {
                    "namespace": ns,
                    "engine": engine_args(m, cache),
                    **source_args(cfg, m, cache),
                    "resources": {"cpu": m.resources.cpu, "memory": m.resources.memory},
                    "startup_budget_seconds": m.startup_budget,
                    "api_key": model_key,
                    "extra_env": dict(m.extra_env),
                    "scheduling": gpu_pool.contract,
                    **weights_arg(m),
                    "scaling": {
                        "min_scale": k.min_scale, "max_scale": k.max_scale, "initial_scale": k.initial_scale,
                        "target_concurrency": k.target_concurrency, "container_concurrency": k.container_concurrency,
                        "scale_down_delay": k.scale_down_delay, "stable_window": k.stable_window,
                        "panic_window_percentage": k.panic_window_percentage,
                    },
                    "progress_deadline_seconds": k.progress_deadline_seconds,
                    "request_timeout_seconds": knative_request_timeout(cfg.gateway, m),  # covers its route's
                    "enabled_features": knative_features,
                    "knative_namespaces": knative_namespaces,
                    "network": {"monitoring_namespaces": list(cfg.network.monitoring_namespaces)},
                    **({"image": m.image} if m.image else {}),
                    **({"shm_size": m.shm_size} if m.shm_size else {}),
                    **({"canary": knative_canary_args(m, cache)} if knative_canary else {}),
                },
                opts=pulumi.ResourceOptions(
                    provider=provider,
                    depends_on=[namespace, *([cache] if cache else []), gpu_pool, *([knative_install] if knative_install else [])],
                ),
            )
            models[m.name] = {"endpoint": kserver.endpoint, "servedModelName": kserver.served_model_name}
            if knative_canary:  # Knative splits the model's URL; the canary's tagged URL reaches it alone
                models[m.name]["canary"] = {"url": kserver.canary_url, "weight": m.canary.weight,
                                            "revision": kserver.canary_revision_name, "stableRevision": kserver.revision_name}
                knative_canaries.append(kserver.canary_revision_name)
            if is_exposed(cfg.gateway, m):  # gateway: through Knative's ingress (activator, traffic split)
                route = ModelRoute(m.name, knative_route_args(cfg, m, ns, kserver), opts=pulumi.ResourceOptions(
                    provider=provider, depends_on=[kserver, *([knative_install] if knative_install else [])]))
                if cfg.gateway.base_url:
                    models[m.name]["url"] = pulumi.Output.concat(cfg.gateway.base_url, route.path_prefix)
            continue
        # --- end knative ---
        server_args = {
            "namespace": ns,
            "engine": engine_args(m, cache),
            **source_args(cfg, m, cache),
            "replicas": m.replicas,
            "autoscaled": m.autoscaling is not None,
            **({"max_replicas": m.autoscaling.max_replicas} if m.autoscaling is not None else {}),
            "resources": {"cpu": m.resources.cpu, "memory": m.resources.memory},
            "startup_budget_seconds": m.startup_budget,
            "scheduling_seconds": m.cold_start_budget.scheduling_seconds,  # node + image, stated figures
            "api_key": model_key,
            "extra_env": dict(m.extra_env),
            "scheduling": gpu_pool.contract,  # gpu pool
            **weights_arg(m),
            "rollout": {"max_surge": m.rollout.max_surge, "max_unavailable": m.rollout.max_unavailable},
            "network": {
                "client_namespaces": list(cfg.network.client_namespaces)
                + (list(team_cfg.client_namespaces) if team_cfg else [])  # teams: its own callers, no other team's
                # scale-to-zero: clients come through the KEDA HTTP add-on's interceptor
                + ([cfg.autoscaling.keda_namespace] if m.autoscaling and m.autoscaling.min_replicas == 0 else [])
                # gateway: only an exposed model admits the Gateway's (or ingress controller's) pods
                + ([cfg.gateway.edge_namespace] if is_exposed(cfg.gateway, m) else []),
                "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
            },
            **({"image": m.image} if m.image else {}),
            **({"shm_size": m.shm_size} if m.shm_size else {}),
        }
        # The Job must have completed (weights in the cache) before servers start.
        server_opts = pulumi.ResourceOptions(provider=provider, depends_on=[namespace, *([cache] if cache else []), gpu_pool])
        if is_multi_node(cfg, m):  # multi-node: a group of whole nodes per replica, after the LWS webhook is up
            server = MultiNodeVllmService(m.name, multi_node_args(cfg, m, server_args), opts=pulumi.ResourceOptions.merge(
                server_opts, pulumi.ResourceOptions(depends_on=[*([lws_controller] if lws_controller else [])])))
        else:
            server = VllmService(m.name, server_args, opts=server_opts)
        models[m.name] = {"endpoint": server.endpoint, "servedModelName": server.served_model_name}
        # --- canary: a second server under the same served name; the route splits the traffic by weight ---
        canary_server = None
        cv = m.canary_variant
        if cv is not None:
            canary_name = f"{m.name}-canary"
            canary_cache = cache
            if cv.revision != m.revision:  # other weights: their own volume and download (same adapters)
                canary_cache = ModelCache(
                    canary_name,
                    {**cache_args, "revision": cv.revision},
                    opts=in_ns,
                )
                caches[m.name].append(canary_cache)
            canary_server = VllmService(
                canary_name,
                {
                    **{k: v for k, v in server_args.items() if k not in ("image", "autoscaled", "max_replicas")},
                    "engine": engine_args(cv, canary_cache),
                    **source_args(cfg, cv, canary_cache),
                    "replicas": cv.replicas,
                    **({"image": cv.image} if cv.image else {}),
                    "canary_of": m.name,
                },
                opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, *([canary_cache] if canary_cache else []), gpu_pool]),
            )
            models[m.name]["canary"] = {"endpoint": canary_server.endpoint, "weight": m.canary.weight}
        # --- end canary ---
        # --- gateway: the model's /v1 on the shared host (HTTPRoute by model name, or Ingress) ---
        if is_exposed(cfg.gateway, m):
            gw = cfg.gateway
            pool = None
            if kv_cache_aware(gw, m):  # the Endpoint Picker chooses the replica for every request
                pool = InferencePool(
                    m.name,
                    {
                        "namespace": ns,
                        "pod_selector": selector_labels(m.name),  # the server's pods (VllmService's selector)
                        "gateway_namespace": gw.edge_namespace,
                        "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
                        "serves_lora": bool(m.lora_adapters),
                        # priorities per served name: InferenceObjectives of this pool
                        **({"objectives": [{"served_model_name": s, "priority": p} for _, s, p in prioritized_names(m)]}
                           if prioritized_names(m) else {}),
                    },
                    opts=pulumi.ResourceOptions(provider=provider, depends_on=[server]),
                )
            canary_pool = None
            if pool is not None and canary_server is not None:  # the canary's replicas get a picker of their own
                canary_pool = InferencePool(
                    f"{m.name}-canary",
                    {
                        "namespace": ns,
                        "pod_selector": selector_labels(f"{m.name}-canary"),  # the canary's pods only
                        "gateway_namespace": gw.edge_namespace,
                        "monitoring_namespaces": list(cfg.network.monitoring_namespaces),
                        "serves_lora": bool(m.lora_adapters),
                    },
                    opts=pulumi.ResourceOptions(provider=provider, depends_on=[canary_server]),
                )
            route = ModelRoute(
                m.name,
                {
                    "namespace": ns,
                    "service_name": server.service_name,
                    "served_model_names": [m.served_name, *(a.name for a in m.lora_adapters)],  # adapters by name too
                    "kind": gw.kind,
                    "request_timeout_seconds": request_budget(gw, m),
                    **({"inference_pool_name": pool.pool_name} if pool is not None else {}),
                    **({"canary": {"service_name": canary_server.service_name, "weight": m.canary.weight,
                                   **({"inference_pool_name": canary_pool.pool_name} if canary_pool is not None else {})}}
                       if canary_server is not None else {}),
                    **edge_args(gw),
                },
                opts=pulumi.ResourceOptions(provider=provider, depends_on=[server, *([canary_server] if canary_server else [])]),
            )
            if gw.base_url:
                models[m.name]["url"] = pulumi.Output.concat(gw.base_url, route.path_prefix)
        # --- end gateway ---
        # --- autoscaling: collect the autoscaled servers (GpuAutoscaling below) ---
        if m.autoscaling is not None:
            a = m.autoscaling
            # Names, served name and startup budget come from the server; unset keys take GpuAutoscaling's defaults.
            scaled.append(scaled_workload(
                server, a.max_replicas, min_replicas=a.min_replicas, metric=a.metric, target=a.target,
                cooldown_seconds=m.cooldown_seconds, polling_interval_seconds=a.polling_interval_seconds,
                kv_cache_target=a.kv_cache_target, ttft_p95_seconds=a.ttft_p95_seconds,
                **({"schedules": [s.args() for s in a.schedules]} if a.schedules else {}),  # warm capacity
            ))
            scaled_servers.append(server)

    ns, namespace = stack_ns, stack_namespace  # teams: the loop placed models in team namespaces
    # --- body-based router: beside the user's Gateway, the body's model becomes the routes' header ---
    bbr = cfg.gateway.body_based_routing if cfg.gateway is not None else None
    if bbr is not None and bbr.install:
        ref = cfg.gateway.gateway_ref
        BodyRouter("body-based-router", {"namespace": ref.namespace, "gateway_name": ref.name, "provider": bbr.provider,
                                          "replicas": bbr.replicas}, opts=on_cluster)
    # --- end body-based router ---

    outputs = {"namespace": ns, "models": models, "apiKey": pulumi.Output.secret(api_key.result)}
    if team_outputs:
        outputs["teams"] = team_outputs
    # What a cold replica of each model costs, from the stated figures (llmstack_k8s.cold_start).
    outputs["coldStart"] = {m.name: m.cold_start_budget.as_output() for m in cfg.models}

    # --- observability: Prometheus/Grafana, DCGM exporter, vLLM scraping, alerts, dashboards ---
    o = cfg.observability
    observability = Observability(
        "observability",
        {
            "models": [
                {
                    "name": m.name,
                    "namespace": cfg.team_of(m.name).effective_namespace if cfg.team_of(m.name) else cfg.namespace,  # teams
                    "served_model_name": m.served_name,
                    "always_on": not (m.autoscaling is not None and m.autoscaling.min_replicas == 0)
                    and not (m.serving == "knative" and m.knative_scaling.min_scale == 0),  # knative
                    **({"download_job_name": caches[m.name][0].job_name} if caches[m.name] else {}),  # none: object storage
                    "download_job_names": [c.job_name for c in caches[m.name][1:]],  # a canary's own cache
                    **({"ttft_p95_seconds": m.slo_ttft_p95_seconds} if m.slo_ttft_p95_seconds else {}),
                }
                for m in cfg.models
            ],
            "serving_namespaces": [cfg.namespace, *(t.effective_namespace for t in cfg.teams)],
            **({"knative_canary_revisions": knative_canaries} if knative_canaries else {}),
            # The stack keeps the names its clusters already have (the component derives them from its name).
            "names": {"pod_monitor": "vllm", "prometheus_rule": "llmstack-alerts",
                      "dashboard_prefix": "llmstack-dashboard", "grafana_admin_secret": "grafana-admin"},
            **charts,
            "namespace": o.namespace,
            "install_prometheus_stack": o.install_prometheus_stack,
            "install_dcgm_exporter": o.dcgm_exporter,
            "dcgm_exporter_namespace": o.dcgm_exporter_namespace,  # created privileged beside an existing Prometheus
            "scheduling": gpu_pool.contract,  # the DCGM exporter runs where the GPU pods run
            "scrape_interval": o.scrape_interval,
            "thresholds": o.alerts.model_dump(),
            **({"monitor_labels": dict(o.monitor_labels)} if o.monitor_labels is not None else {}),
            **({"prometheus_url": o.prometheus_url} if o.prometheus_url else {}),
            **({"grafana_url": o.grafana_url} if o.grafana_url else {}),
            **({"prometheus": {
                "retention": o.prometheus.retention,
                "cpu": o.prometheus.cpu,
                "memory": o.prometheus.memory,
                **({"retention_size": o.prometheus.effective_retention_size} if o.prometheus.effective_retention_size else {}),
                **({"storage_size": o.prometheus.storage_size} if o.prometheus.storage_size else {}),
                **({"storage_class_name": o.prometheus.storage_class} if o.prometheus.storage_class else {}),
            }} if o.install_prometheus_stack else {}),
        },
        opts=on_cluster,
    )
    outputs["prometheusUrl"] = observability.prometheus_url
    outputs["grafanaUrl"] = observability.grafana_url
    if o.install_prometheus_stack:
        outputs["grafanaAdminPassword"] = observability.grafana_admin_password
    # --- end observability ---

    # --- autoscaling: KEDA + one ScaledObject per autoscaled model ---
    if scaled:
        autoscaling = GpuAutoscaling(
            "autoscaling",
            {
                "workloads": scaled,
                "install_keda": cfg.autoscaling.install_keda,
                "http_add_on": cfg.autoscaling.http_add_on,
                "keda_namespace": cfg.autoscaling.keda_namespace,
                "prometheus_url": cfg.autoscaling.prometheus_url,
                # kube-prometheus-stack's default ServiceMonitor selector
                "service_monitor_labels": {"release": "kube-prometheus-stack"},
                # KEDA's ServiceMonitors need the Prometheus Operator's CRDs: install KEDA after them.
                "prometheus_operator_api": observability.prometheus_operator_api,
                **charts,
            },
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, *scaled_servers]),
        )
        camel_bounds = autoscaling.bounds.apply(
            lambda b: {k: {"minReplicas": v["min_replicas"], "maxReplicas": v["max_replicas"],
                           "cooldownSeconds": v["cooldown_seconds"], "scaleToZero": v["scale_to_zero"]} for k, v in b.items()}
        )
        outputs["autoscaling"] = {"bounds": camel_bounds, "bufferedEndpoints": autoscaling.buffered_endpoints}
    # --- end autoscaling ---

    return outputs
