import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { startMoto } from "./test/moto";

// The Worker runs in workerd (through miniflare); moto, started here, stands in for SQS on 127.0.0.1.
export default defineConfig(async () => {
  const moto = await startMoto();
  return {
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        miniflare: {
          compatibilityDate: "2026-04-20",
          compatibilityFlags: ["nodejs_compat"],
          bindings: {
            AWS_ACCESS_KEY_ID: moto.producerKeyId,
            AWS_SECRET_ACCESS_KEY: moto.producerSecret,
            AWS_SQS_URL: moto.queueUrl,
            AWS_REGION: moto.region,
            MOTO: JSON.stringify(moto),
          },
        },
      }),
    ],
    test: { include: ["test/**/*.test.ts"], testTimeout: 30_000 },
  };
});
