// One model served by the llmstack components from TypeScript: the generated SDK (@pulumi/llmstack)
// builds the same Python components a Python program would, through the package's provider host.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as llmstack from "@pulumi/llmstack";

const config = new pulumi.Config();
const stack = pulumi.getStack();

// An explicit provider, passed to the components: the stack file disables the default Kubernetes
// provider, so every child the components create must use this one.
const provider = new k8s.Provider("cluster", { enableServerSideApply: true });
const ns = new k8s.core.v1.Namespace("llm", { metadata: { name: `llm-${stack}` } }, { provider });

// The cluster's GPU nodes already run a device plugin (here: simulated nodes advertising nvidia.com/gpu):
// the pool installs nothing and hands out the scheduling contract, as Outputs.
const pool = new llmstack.GpuNodePool("gpu", {
    install: llmstack.GpuInstall.EXISTING,
    nodeSelector: { [config.require("gpuNodeLabel")]: stack },
    taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }],
}, { providers: [provider] });

// The cache's namespace is another resource's Output (an Input across the language boundary).
const cache = new llmstack.ModelCache("qwen-cache", {
    namespace: ns.metadata.name,
    model: "Qwen/Qwen2.5-0.5B-Instruct",
    revision: "7ae557604adf67be50417f59c2c2f167def9a775",
    size: "2Gi",
    accessMode: llmstack.AccessMode.READ_WRITE_ONCE,
    backoffLimit: 2,
    activeDeadlineSeconds: 1800,
    // Plain text here on purpose: the schema marks hfToken secret, so it must stay out of the state.
    hfToken: config.get("hfToken"),
}, { providers: [provider] });

const server = new llmstack.VllmService("qwen", {
    namespace: ns.metadata.name,
    engine: {
        servedModelName: "qwen2.5-0.5b-instruct",
        maxModelLen: config.getNumber("maxModelLen") ?? 4096,
        tensorParallelSize: 1,
        gpuMemoryUtilization: 0.85,
        dtype: llmstack.Dtype.BFLOAT16,
    },
    modelPath: cache.modelPath,
    cacheClaimName: cache.claimName,
    replicas: 1,
    resources: { cpu: "2", memory: "8Gi" },
    // The pool's contract, field by field: each one an Output of the pool.
    scheduling: {
        gpuResourceName: pool.gpuResourceName,
        nodeSelector: pool.nodeSelector,
        tolerations: pool.tolerations,
    },
    startupBudgetSeconds: 900,
    // An Output inside a list: the clients' namespace is named after the server's.
    network: { clientNamespaces: [pulumi.interpolate`${ns.metadata.name}-apps`], monitoringNamespaces: ["monitoring"] },
}, { providers: [provider], dependsOn: [cache] });

export const namespace = ns.metadata.name;
export const gpuResourceName = pool.gpuResourceName;
export const claimName = cache.claimName;
export const jobName = cache.jobName;
export const modelPath = cache.modelPath;
export const deploymentName = server.deploymentName;
export const serviceName = server.serviceName;
export const endpoint = server.endpoint;
export const servedModelName = server.servedModelName;
export const apiKey = server.apiKey;
export const apiKeySecretName = server.apiKeySecretName;
