// A TypeScript program deploying LlmGateway through the component package: the SDK under
// sdks/llm-gateway is what `pulumi package add <repo>/package` generated from the package's
// schema, and npm links it as @pulumi/llm-gateway.
import * as pulumi from "@pulumi/pulumi";
import * as llmGateway from "@pulumi/llm-gateway";

const config = new pulumi.Config();
const gateway = new llmGateway.LlmGateway("consumer", {
    openaiKey: config.requireSecret("openaiKey"),
    namespace: config.require("namespace"),
    openaiBaseUrl: config.require("openaiBaseUrl"),
    agentgateway: { enabled: false },
    proxy: config.requireObject("proxy"),
    kubeconfig: config.require("kubeconfig"),
});

export const namespace = gateway.namespace;
export const secretName = gateway.secretName;
export const keyFingerprint = gateway.keyFingerprint;
export const proxyEndpoint = gateway.proxyEndpoint;
export const killSwitch = gateway.killSwitch;
export const smokeTest = gateway.smokeTest;
