declare namespace Cloudflare {
  interface Env {
    AWS_ACCESS_KEY_ID: string;
    AWS_SECRET_ACCESS_KEY: string;
    AWS_SQS_URL: string;
    AWS_REGION: string;
    MOTO: string;
    ANALYTICS_BATCHER: DurableObjectNamespace<import("@chat-analytics/worker-logger").AnalyticsBatcher>;
    CONTRACT_SCHEMA: string;
    CONTRACT_EXAMPLES: string;
  }
}
